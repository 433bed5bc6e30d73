# Configs shared by bench/proxy.sh and bench/proxy-ab.sh (sourced).

# nginx wants writable temp dirs; keep them in the run's directory.
temp_paths() {
    for t in client_body proxy fastcgi uwsgi scgi; do echo "    ${t}_temp_path $1/$t;"; done
}

# backend_conf DIR PORT WWW: nginx, one worker, static files, no log.
backend_conf() {
    cat >"$1/nginx.conf" <<EOC
daemon off; master_process on; user root; worker_processes 1;
pid $1/nginx.pid; error_log $1/error.log warn;
events { worker_connections 4096; }
http {
$(temp_paths "$1")
    access_log off; keepalive_timeout 75s; keepalive_requests 1000000;
    server { listen 127.0.0.1:$2; root $3; }
}
EOC
}

# nginx_proxy_conf DIR PORT BACKEND_PORT WORKERS NOFILE: nginx as a reverse
# proxy, configured fairly: upstream keepalive, the headers ours sends, the
# same buffered access log.
nginx_proxy_conf() {
    cat >"$1/nginx.conf" <<EOC
daemon off; master_process on; user root; worker_processes $4;
worker_rlimit_nofile $5;
pid $1/nginx.pid; error_log $1/error.log warn;
events { worker_connections $(($5 - 100)); }
http {
$(temp_paths "$1")
    # Same logging as ours: combined, 64 KiB buffer, flushed every second.
    access_log $1/access.log combined buffer=64k flush=1s;
    keepalive_timeout 75s; keepalive_requests 1000000;
    upstream backend { server 127.0.0.1:$3; keepalive 32; keepalive_timeout 4s; }
    server {
        listen 127.0.0.1:$2;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The headers ours sends (host: client is its default).
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOC
}

# ours_conf DIR PORT BACKEND_PORT WORKERS: hadeploy's proxy, the same job.
ours_conf() {
    cat >"$1/proxy.yaml" <<EOC
node: bench
workers: $4
upstreams:
  backend:
    servers: [{ address: "127.0.0.1:$3" }]
    keepalive: { max_idle: 32, idle_timeout: 4s }
sites:
  - name: bench
    listen: ["127.0.0.1:$2"]
    access_log: { path: "$1/access.log", format: combined }
    locations:
      - path: /
        proxy: { upstream: backend }
EOC
}
