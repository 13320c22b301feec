//! Text from the store on a page: isolated from the text around it, with the characters that
//! would hide or reorder it shown in words.
//!
//! A right-to-left override (U+202E) in a user id turns `u\u{202e}evil` into `ulive` on screen and
//! the rest of the row with it; a log line can pass `exe.png` for `gnp.exe`. Each value is
//! put in `<bdi>` (its direction stays inside), and every control character (but the line
//! feed and the tab, which `pre` shows as they are) and every bidirectional formatting
//! character is replaced by its escape (`\u{202e}`) in a `span class="ctl"`. The live log's
//! script does the same with the same characters (`static/console.js`).

use maud::{html, Markup, Render};

/// Whether `c` is shown as its escape rather than as itself.
pub(crate) fn is_hidden(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// How a hidden character is written instead.
fn escape(c: char) -> String {
    format!("\\u{{{:x}}}", u32::from(c))
}

/// `text` with every hidden character written as its escape, for where no markup may go
/// (a page's title).
pub(crate) fn visible(text: &str) -> String {
    text.chars()
        .fold(String::with_capacity(text.len()), |mut out, c| {
            if is_hidden(c) {
                out.push_str(&escape(c));
            } else {
                out.push(c);
            }
            out
        })
}

/// A value from the store, rendered isolated, with its hidden characters marked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shown<'a>(pub(crate) &'a str);

impl Render for Shown<'_> {
    fn render(&self) -> Markup {
        let text = self.0;
        html! {
            bdi {
                @for run in text.split_inclusive(is_hidden) {
                    @let (plain, hidden) = match run.char_indices().last() {
                        Some((at, c)) if is_hidden(c) => (&run[..at], Some(c)),
                        _ => (run, None),
                    };
                    (plain)
                    @if let Some(c) = hidden {
                        span class="ctl" title=(format!("U+{:04X}", u32::from(c))) { (escape(c)) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_and_controls_are_marked_and_the_rest_kept() {
        let shown = Shown("u\u{202e}evil\r\n\t<b>\u{0}").render().into_string();
        assert_eq!(
            shown,
            "<bdi>u<span class=\"ctl\" title=\"U+202E\">\\u{202e}</span>evil\
             <span class=\"ctl\" title=\"U+000D\">\\u{d}</span>\n\t&lt;b&gt;\
             <span class=\"ctl\" title=\"U+0000\">\\u{0}</span></bdi>"
        );
        assert_eq!(visible("a\u{2066}b"), "a\\u{2066}b");
    }

    proptest::proptest! {
        /// Nothing hidden reaches the page.
        #[test]
        fn no_hidden_character_is_rendered(text in "\\PC{0,8}|[a\\u{0}-\\u{1f}\\u{7f}-\\u{9f}\\u{200e}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}]{0,8}") {
            let html = Shown(&text).render().into_string();
            proptest::prop_assert!(!html.chars().any(is_hidden), "{:?}", html);
            proptest::prop_assert_eq!(visible(&text).chars().any(is_hidden), false);
        }
    }
}
