// The one home of escaping for text that comes from users or data: terminal lines (control bytes
// such as ESC and NUL shown as \xNN, so a data file cannot drive the terminal), Markdown table cells
// and HTML.

/** Control characters (C0 except tab, DEL, C1) as \xNN: safe to print on a terminal. */
export function escapeControl(text: unknown): string {
  return String(text).replace(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/g, (c) => (c === '\n' ? '\\n' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/** Text for one line of Markdown (a list item or a table cell): no markup, links, HTML or line breaks survive. */
export function escapeMarkdown(text: unknown): string {
  return escapeControl(text).replace(/[\\`*_{}[\]()#+!|<>~]/g, (c) => `\\${c}`);
}

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: unknown): string {
  return String(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}
