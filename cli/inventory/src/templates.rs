//! The embedded minijinja environment: strict undefined (a typo in a
//! template is an error, never an empty string) and kept trailing newlines
//! (rendered files are hashed byte for byte).

use minijinja::{Environment, UndefinedBehavior};

pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    minijinja_embed::load_templates!(&mut env);
    env
}
