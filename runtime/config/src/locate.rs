//! Maps YAML paths (`clusters.web.vips[0].vrid`) to source positions.
//!
//! serde gives typed values but forgets where they came from; semantic
//! checks run on typed values. This index, built from the same text with an
//! event parser, lets every semantic diagnostic name `file:line:column`.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    /// Position of the key (for mapping entries) or of the item (sequences).
    keys: HashMap<String, Pos>,
    /// Position of the value node.
    values: HashMap<String, Pos>,
}

enum Frame {
    Map {
        path: String,
        pending_key: Option<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl SourceMap {
    /// Builds the index. Malformed YAML yields a partial index: the serde pass
    /// reports the syntax error itself, with its own position.
    pub fn build(text: &str) -> Self {
        let mut map = SourceMap::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Some(Ok((event, span))) = parser.next_event() {
            let pos = Pos {
                line: span.start.line(),
                column: span.start.col() + 1,
            };
            // Where does this node sit? Decide before pushing a new frame.
            let node_path = match stack.last_mut() {
                None => Some(String::new()),
                Some(Frame::Seq { path, next }) => {
                    let p = format!("{path}[{next}]");
                    *next += 1;
                    map.keys.entry(p.clone()).or_insert(pos);
                    Some(p)
                }
                Some(Frame::Map { path, pending_key }) => match pending_key.take() {
                    Some(k) => Some(join(path, &k)),
                    None => {
                        // This node is a key.
                        if let Event::Scalar(s, ..) = &event {
                            let key = s.to_string();
                            map.keys.entry(join(path, &key)).or_insert(pos);
                            *pending_key = Some(key);
                        } else {
                            // Complex keys are not used by our schemas.
                            *pending_key = Some("?".to_string());
                        }
                        None
                    }
                },
            };
            match event {
                Event::MappingStart(..) => {
                    let path = node_path.unwrap_or_default();
                    map.values.entry(path.clone()).or_insert(pos);
                    stack.push(Frame::Map {
                        path,
                        pending_key: None,
                    });
                }
                Event::SequenceStart(..) => {
                    let path = node_path.unwrap_or_default();
                    map.values.entry(path.clone()).or_insert(pos);
                    stack.push(Frame::Seq { path, next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                Event::Scalar(..) | Event::Alias(..) => {
                    if let Some(p) = node_path {
                        map.values.entry(p).or_insert(pos);
                    }
                }
                _ => {}
            }
        }
        map
    }

    /// Position of the key at `path`, or of the nearest ancestor we know.
    pub fn key(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.keys.get(p).or_else(|| self.values.get(p)) {
                return Some(*pos);
            }
            p = parent(p)?;
        }
    }

    /// Position of the value at `path` (falls back to the key).
    pub fn value(&self, path: &str) -> Option<Pos> {
        self.values.get(path).copied().or_else(|| self.key(path))
    }
}

fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keys_items_and_values() {
        let text = "a:\n  b: 1\n  list:\n    - x: 2\n    - y\n";
        let m = SourceMap::build(text);
        assert_eq!(m.key("a.b"), Some(Pos { line: 2, column: 3 }));
        assert_eq!(m.value("a.b"), Some(Pos { line: 2, column: 6 }));
        assert_eq!(m.key("a.list[0].x"), Some(Pos { line: 4, column: 7 }));
        assert_eq!(m.key("a.list[1]"), Some(Pos { line: 5, column: 7 }));
        // Unknown leaf falls back to its parent.
        assert_eq!(m.key("a.list[0].zzz"), Some(Pos { line: 4, column: 7 }));
    }

    #[test]
    fn flow_style_is_indexed_too() {
        let m = SourceMap::build("hosts: {lb1: {port: 22}}\n");
        assert_eq!(
            m.key("hosts.lb1.port"),
            Some(Pos {
                line: 1,
                column: 15
            })
        );
    }
}
