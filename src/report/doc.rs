//! A report as sections of paragraphs, lists and tables, rendered as Markdown or as one
//! self-contained HTML page (the same content in both).

use serde::Serialize;

/// One block of a section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Block {
    Para(String),
    List(Vec<String>),
    Table {
        head: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// A chart: inline in HTML; in Markdown an image link to `file` (written beside it).
    Figure {
        file: String,
        caption: String,
        #[serde(skip)]
        svg: String,
    },
}

/// A titled section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    pub title: String,
    pub blocks: Vec<Block>,
}

/// A whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Doc {
    pub title: String,
    pub sections: Vec<Section>,
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Doc {
    pub fn markdown(&self) -> String {
        let mut out = format!("# {}\n", self.title);
        for s in &self.sections {
            out.push_str(&format!("\n## {}\n", s.title));
            for b in &s.blocks {
                out.push('\n');
                match b {
                    Block::Para(p) => out.push_str(&format!("{p}\n")),
                    Block::List(items) => {
                        for i in items {
                            out.push_str(&format!("- {i}\n"));
                        }
                    }
                    Block::Figure { file, caption, .. } => {
                        out.push_str(&format!("![{}]({file})\n", md_cell(caption)))
                    }
                    Block::Table { head, rows } => {
                        let line = |cells: &[String]| {
                            format!(
                                "| {} |\n",
                                cells
                                    .iter()
                                    .map(|c| md_cell(c))
                                    .collect::<Vec<_>>()
                                    .join(" | ")
                            )
                        };
                        out.push_str(&line(head));
                        out.push_str(&format!("|{}\n", "---|".repeat(head.len())));
                        for r in rows {
                            out.push_str(&line(r));
                        }
                    }
                }
            }
        }
        out
    }

    pub fn html(&self) -> String {
        let mut out = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:.2em .5em;text-align:left}}</style></head><body>\n<h1>{t}</h1>\n",
            t = html_escape(&self.title)
        );
        for s in &self.sections {
            out.push_str(&format!("<h2>{}</h2>\n", html_escape(&s.title)));
            for b in &s.blocks {
                match b {
                    Block::Para(p) => out.push_str(&format!("<p>{}</p>\n", html_escape(p))),
                    Block::List(items) => {
                        out.push_str("<ul>\n");
                        for i in items {
                            out.push_str(&format!("<li>{}</li>\n", html_escape(i)));
                        }
                        out.push_str("</ul>\n");
                    }
                    Block::Figure { caption, svg, .. } => out.push_str(&format!(
                        "<figure>{svg}<figcaption>{}</figcaption></figure>\n",
                        html_escape(caption)
                    )),
                    Block::Table { head, rows } => {
                        out.push_str("<table>\n<tr>");
                        for h in head {
                            out.push_str(&format!("<th>{}</th>", html_escape(h)));
                        }
                        out.push_str("</tr>\n");
                        for r in rows {
                            out.push_str("<tr>");
                            for c in r {
                                out.push_str(&format!("<td>{}</td>", html_escape(c)));
                            }
                            out.push_str("</tr>\n");
                        }
                        out.push_str("</table>\n");
                    }
                }
            }
        }
        out.push_str("</body></html>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_and_html_carry_the_same_content_escaped() {
        let d = Doc {
            title: "A <b> & c".into(),
            sections: vec![Section {
                title: "One".into(),
                blocks: vec![
                    Block::Para("p1".into()),
                    Block::List(vec!["x".into(), "y".into()]),
                    Block::Table {
                        head: vec!["a".into(), "b".into()],
                        rows: vec![vec!["1|2".into(), "<3>".into()]],
                    },
                ],
            }],
        };
        let md = d.markdown();
        assert!(
            md.starts_with("# A <b> & c\n\n## One\n\np1\n\n- x\n- y\n"),
            "{md}"
        );
        assert!(
            md.contains("| a | b |\n|---|---|\n| 1\\|2 | <3> |\n"),
            "{md}"
        );
        let h = d.html();
        assert!(h.contains("<h1>A &lt;b&gt; &amp; c</h1>"), "{h}");
        assert!(h.contains("<td>1|2</td><td>&lt;3&gt;</td>"), "{h}");
        assert!(h.contains("<li>y</li>"), "{h}");
    }
}
