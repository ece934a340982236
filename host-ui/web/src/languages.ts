//! Which syntax a file gets, by its name. The grammars (all but the stream-language core the editor needs anyway) are loaded on first use, so the page's
//! first paint does not wait for parsers it may never need.

import type { Extension } from '@codemirror/state';
import { StreamLanguage } from '@codemirror/language';

export type Language = { name: string; load: () => Promise<Extension> };

const legacy = async (mode: 'toml' | 'yaml' | 'shell'): Promise<Extension> => {
  switch (mode) {
    case 'toml':
      return StreamLanguage.define((await import('@codemirror/legacy-modes/mode/toml')).toml);
    case 'yaml':
      return StreamLanguage.define((await import('@codemirror/legacy-modes/mode/yaml')).yaml);
    case 'shell':
      return StreamLanguage.define((await import('@codemirror/legacy-modes/mode/shell')).shell);
  }
};

const js = (typescript: boolean, jsx: boolean) => async () => (await import('@codemirror/lang-javascript')).javascript({ typescript, jsx });

const BY_EXTENSION: Record<string, Language> = {
  rs: { name: 'Rust', load: async () => (await import('@codemirror/lang-rust')).rust() },
  ts: { name: 'TypeScript', load: js(true, false) },
  mts: { name: 'TypeScript', load: js(true, false) },
  cts: { name: 'TypeScript', load: js(true, false) },
  tsx: { name: 'TypeScript JSX', load: js(true, true) },
  js: { name: 'JavaScript', load: js(false, false) },
  mjs: { name: 'JavaScript', load: js(false, false) },
  cjs: { name: 'JavaScript', load: js(false, false) },
  jsx: { name: 'JavaScript JSX', load: js(false, true) },
  py: { name: 'Python', load: async () => (await import('@codemirror/lang-python')).python() },
  pyi: { name: 'Python', load: async () => (await import('@codemirror/lang-python')).python() },
  toml: { name: 'TOML', load: () => legacy('toml') },
  json: { name: 'JSON', load: async () => (await import('@codemirror/lang-json')).json() },
  md: { name: 'Markdown', load: async () => (await import('@codemirror/lang-markdown')).markdown() },
  markdown: { name: 'Markdown', load: async () => (await import('@codemirror/lang-markdown')).markdown() },
  html: { name: 'HTML', load: async () => (await import('@codemirror/lang-html')).html() },
  htm: { name: 'HTML', load: async () => (await import('@codemirror/lang-html')).html() },
  css: { name: 'CSS', load: async () => (await import('@codemirror/lang-css')).css() },
  yaml: { name: 'YAML', load: () => legacy('yaml') },
  yml: { name: 'YAML', load: () => legacy('yaml') },
  sh: { name: 'Shell', load: () => legacy('shell') },
  bash: { name: 'Shell', load: () => legacy('shell') },
};

const BY_NAME: Record<string, Language> = {
  'Cargo.lock': BY_EXTENSION.toml,
  'Symphony.toml': BY_EXTENSION.toml,
  Dockerfile: BY_EXTENSION.sh,
  '.bashrc': BY_EXTENSION.sh,
};

const PLAIN: Language = { name: 'Plain text', load: async () => [] };

/** The language of a workspace path (`src/main.rs` → Rust); plain text when unknown. */
export function languageFor(path: string): Language {
  const base = path.split('/').pop() ?? path;
  if (BY_NAME[base]) return BY_NAME[base];
  const dot = base.lastIndexOf('.');
  if (dot <= 0) return PLAIN;
  return BY_EXTENSION[base.slice(dot + 1).toLowerCase()] ?? PLAIN;
}
