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
    env.add_filter("yaml_str", yaml_str);
    env
}

/// A YAML scalar for any string: JSON's double-quoted form is valid YAML and
/// never misread as a number, bool or mapping.
fn yaml_str(s: String) -> String {
    serde_json::to_string(&s).unwrap_or_else(|_| "\"\"".to_string())
}
