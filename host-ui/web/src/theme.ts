//! Themes as design tokens (`background`, `editor.selection`, `syntax.keyword`, …) turned into
//! CSS custom properties on the page. Light and dark are built in; a motif caret's `@theme`
//! tokens lay over dark, so a motif that names only some tokens still gives a whole theme.

export type Tokens = Record<string, string>;

export const dark: Tokens = {
  background: '#1e1f22',
  foreground: '#d4d7dd',
  muted: '#8b9099',
  accent: '#4fa3ff',
  'accent.secondary': '#c678dd',
  'panel.background': '#26282c',
  'panel.border': '#3a3d42',
  'editor.background': '#1e1f22',
  'editor.selection': '#2f4c70',
  'editor.cursor': '#e8eaed',
  'editor.gutter': '#6b717a',
  'syntax.keyword': '#c678dd',
  'syntax.string': '#98c379',
  'syntax.comment': '#7f848e',
  'syntax.number': '#d19a66',
  'syntax.function': '#61afef',
  'syntax.type': '#e5c07b',
  error: '#f16c6c',
  warning: '#e5c07b',
};

export const light: Tokens = {
  background: '#ffffff',
  foreground: '#1f2328',
  muted: '#656d76',
  accent: '#0969da',
  'accent.secondary': '#8250df',
  'panel.background': '#f6f8fa',
  'panel.border': '#d0d7de',
  'editor.background': '#ffffff',
  'editor.selection': '#b6d6fd',
  'editor.cursor': '#1f2328',
  'editor.gutter': '#8c959f',
  'syntax.keyword': '#cf222e',
  'syntax.string': '#0a3069',
  'syntax.comment': '#6e7781',
  'syntax.number': '#0550ae',
  'syntax.function': '#8250df',
  'syntax.type': '#953800',
  error: '#cf222e',
  warning: '#9a6700',
};

const COLOR = /^(#[0-9a-f]{3,8}|(rgb|rgba|hsl|hsla)\([0-9.,%\s/]+\)|[a-z]{3,20})$/i;
const NAME = /^[a-z][a-z0-9]*(\.[a-z0-9]+)*$/;

/** Only plain colours under plain names: a motif's tokens cannot inject other CSS. */
export function safeTokens(tokens: Record<string, unknown>): Tokens {
  const out: Tokens = {};
  for (const [name, value] of Object.entries(tokens)) {
    if (NAME.test(name) && typeof value === 'string' && COLOR.test(value.trim())) out[name] = value.trim();
  }
  return out;
}

/** The tokens for a `theme` setting: built-in, or a motif's over dark. */
export function themeTokens(setting: string, motif?: Record<string, unknown>): Tokens {
  if (setting === 'light') return light;
  if (setting.startsWith('motif:') && motif) return { ...dark, ...safeTokens(motif) };
  return dark;
}

/** `editor.background` → `--editor-background`. */
export function cssVariables(tokens: Tokens): Record<string, string> {
  return Object.fromEntries(Object.entries(tokens).map(([k, v]) => [`--${k.replace(/\./g, '-')}`, v]));
}

/** Whether a theme is light (for xterm and CodeMirror's own dark flag): by its background. */
export function isLight(tokens: Tokens): boolean {
  const m = /^#([0-9a-f]{6})$/i.exec(tokens.background ?? '');
  if (!m) return false;
  const n = parseInt(m[1], 16);
  const [r, g, b] = [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  return 0.299 * r + 0.587 * g + 0.114 * b > 150;
}
