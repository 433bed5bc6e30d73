//! End-to-end tests: real TCP on 127.0.0.1, backends started by the tests.

mod common;

mod balancing;
mod headers;
mod http1;
mod http2;
mod lifecycle;
mod limits;
mod nginx_diff;
mod reference;
mod routing;
mod static_files;
