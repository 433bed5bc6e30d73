fn main() {
    // Templates live at the repository's top level (templates/) so that ops
    // people find them; they are embedded so the binary is self-contained.
    minijinja_embed::embed_templates!("../../templates");
}
