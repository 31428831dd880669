import { Marked } from 'marked';
import DOMPurify from 'dompurify';

const marked = new Marked({
  gfm: true,
  breaks: false,
  async: false,
  // Headings in a description sit under the page's own h1 and section h2.
  walkTokens(token) {
    if (token.type === 'heading') token.depth = Math.min(6, token.depth + 2);
  },
});

/**
 * True for image sources that make no request off this origin: `data:`, `blob:` and same-origin
 * URLs (relative ones included). Anything else (http(s) to another host, protocol-relative
 * `//host/…`, unknown schemes) is remote: a note must not be able to ping a tracker or leak that
 * it was opened, whatever the CSP says.
 */
export function isLocalImageSource(value: string): boolean {
  const v = value.trim();
  if (v === '') return true;
  if (/^(data|blob):/i.test(v)) return true;
  const base = typeof location !== 'undefined' ? location.href : 'http://localhost/';
  try {
    const u = new URL(v, base);
    if (u.protocol === 'data:' || u.protocol === 'blob:') return true;
    return u.origin === new URL(base).origin;
  } catch {
    return false;
  }
}

/** `srcset` is a list of "url descriptor" candidates; local only when every URL is local. */
function isLocalSrcset(value: string): boolean {
  return value
    .split(',')
    .map((c) => c.trim().split(/\s+/)[0] ?? '')
    .every((u) => isLocalImageSource(u));
}

const IMAGE_URL_ATTRS = ['src', 'srcset', 'href', 'xlink:href'];

let purify: ReturnType<typeof DOMPurify> | null = null;

/**
 * An instance of its own, so these hooks do not leak into other sanitizers of the app (the
 * Playground's answer renderer configures the shared default instance).
 */
function purifier(): ReturnType<typeof DOMPurify> {
  if (purify) return purify;
  const p = DOMPurify(window);
  // Links in untrusted text open in a new tab and cannot reach back into this one.
  p.addHook('afterSanitizeAttributes', (node) => {
    const tag = node.nodeName.toLowerCase();
    if (tag === 'a') {
      if (node.hasAttribute('href')) {
        node.setAttribute('target', '_blank');
        node.setAttribute('rel', 'noopener noreferrer');
      } else {
        node.removeAttribute('target');
      }
      return;
    }
    // Remote image sources: IMG/SOURCE src and srcset, SVG <image>/<use>/<feImage> href.
    if (
      tag === 'img' ||
      tag === 'source' ||
      tag === 'picture' ||
      tag === 'image' ||
      tag === 'use' ||
      tag === 'feimage' ||
      tag === 'input'
    ) {
      for (const attr of IMAGE_URL_ATTRS) {
        const v = node.getAttribute(attr);
        if (v === null) continue;
        const local = attr === 'srcset' ? isLocalSrcset(v) : isLocalImageSource(v);
        if (!local) node.removeAttribute(attr);
      }
    }
    // A background image on any element is another way to make a request.
    if (node.hasAttribute('background')) node.removeAttribute('background');
    if (node.hasAttribute('poster') && !isLocalImageSource(node.getAttribute('poster') ?? '')) {
      node.removeAttribute('poster');
    }
  });
  purify = p;
  return p;
}

/**
 * Markdown to HTML that is safe to insert: marked renders, DOMPurify removes scripts, event
 * handlers, javascript: URLs, forms and styles, and image sources that would load from another
 * origin. The input is always treated as untrusted.
 */
export function renderMarkdown(text: string): string {
  const html = marked.parse(text) as string;
  return purifier().sanitize(html, {
    FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'iframe'],
    FORBID_ATTR: ['style'],
  });
}
