//! The text editors: one CodeMirror 6 view per open file (so each keeps its own undo history,
//! selections and scroll), shown one at a time in a host element. Settings (tab size, word
//! wrap, keymap) are applied to every view through compartments; colours come from the page's
//! CSS variables, so a theme change needs no reconfiguration.

import { basicSetup } from 'codemirror';
import { Compartment, EditorState, type Extension } from '@codemirror/state';
import { EditorView, keymap } from '@codemirror/view';
import { indentWithTab } from '@codemirror/commands';
import { HighlightStyle, indentUnit, syntaxHighlighting } from '@codemirror/language';
import { tags as t } from '@lezer/highlight';
import { languageFor } from './languages';
import type { Settings } from './settings';

export type EditorEvents = {
  /** The text was edited (first edit after a load or save). */
  onDirty(path: string): void;
  /** Ctrl/Cmd-S in a view. */
  onSave(path: string): void;
  /** The cursor moved in the shown view. */
  onCursor(line: number, column: number): void;
};

const highlight = HighlightStyle.define([
  { tag: [t.keyword, t.controlKeyword, t.moduleKeyword, t.operatorKeyword, t.definitionKeyword, t.modifier], color: 'var(--syntax-keyword)' },
  { tag: [t.string, t.special(t.string), t.regexp, t.character], color: 'var(--syntax-string)' },
  { tag: [t.comment, t.lineComment, t.blockComment, t.docComment], color: 'var(--syntax-comment)', fontStyle: 'italic' },
  { tag: [t.number, t.bool, t.null, t.atom], color: 'var(--syntax-number)' },
  { tag: [t.function(t.variableName), t.function(t.propertyName), t.macroName], color: 'var(--syntax-function)' },
  { tag: [t.typeName, t.className, t.namespace, t.tagName], color: 'var(--syntax-type)' },
  { tag: [t.heading], color: 'var(--syntax-keyword)', fontWeight: 'bold' },
  { tag: [t.link, t.url], color: 'var(--accent)', textDecoration: 'underline' },
  { tag: [t.propertyName, t.attributeName], color: 'var(--syntax-function)' },
  { tag: [t.invalid], color: 'var(--error)' },
]);

const look = EditorView.theme({
  '&': { height: '100%', backgroundColor: 'var(--editor-background)', color: 'var(--foreground)', fontSize: 'var(--editor-font-size)' },
  '.cm-scroller': { fontFamily: 'var(--mono)', lineHeight: '1.5' },
  '.cm-content': { caretColor: 'var(--editor-cursor)' },
  '.cm-cursor, .cm-dropCursor': { borderLeftColor: 'var(--editor-cursor)' },
  '&.cm-focused .cm-selectionBackground, .cm-selectionBackground, ::selection': { backgroundColor: 'var(--editor-selection) !important' },
  '.cm-gutters': { backgroundColor: 'var(--editor-background)', color: 'var(--editor-gutter)', border: 'none' },
  '.cm-activeLine': { backgroundColor: 'color-mix(in srgb, var(--editor-selection) 25%, transparent)' },
  '.cm-activeLineGutter': { backgroundColor: 'transparent', color: 'var(--foreground)' },
  '.cm-panels': { backgroundColor: 'var(--panel-background)', color: 'var(--foreground)' },
  '.cm-searchMatch': { backgroundColor: 'color-mix(in srgb, var(--warning) 35%, transparent)' },
  '.cm-tooltip': { backgroundColor: 'var(--panel-background)', border: '1px solid var(--panel-border)' },
});

async function keymapFor(name: string): Promise<Extension> {
  if (name === 'vim') return (await import('@replit/codemirror-vim')).vim();
  if (name === 'emacs') return (await import('@replit/codemirror-emacs')).emacs();
  return [];
}

/** An open view; `path` follows renames. */
type Open = { path: string; view: EditorView; element: HTMLElement; dirty: boolean };

export class Editors {
  private open = new Map<string, Open>();
  private shown: string | null = null;
  private tabSize = new Compartment();
  private wrap = new Compartment();
  private keys = new Compartment();
  private language = new Compartment();
  private settings: Settings | null = null;
  private keymapExtension: Extension = [];

  constructor(
    private host: HTMLElement,
    private events: EditorEvents,
  ) {}

  has(path: string): boolean {
    return this.open.has(path);
  }

  /** Opens a file's text in a new view (hidden until shown). */
  add(path: string, text: string): void {
    if (this.open.has(path)) return;
    const element = document.createElement('div');
    element.className = 'editor-view';
    element.dataset.path = path;
    element.hidden = true;
    this.host.appendChild(element);
    const entry: Open = { path, view: null as unknown as EditorView, element, dirty: false };
    const state = EditorState.create({ doc: text, extensions: this.extensions(() => entry) });
    entry.view = new EditorView({ state, parent: element });
    this.open.set(path, entry);
    void this.loadLanguage(path, entry);
  }

  private extensions(entry: () => Open): Extension[] {
    const s = this.settings;
    return [
      basicSetup,
      EditorState.allowMultipleSelections.of(true),
      keymap.of([
        indentWithTab,
        { key: 'Mod-s', preventDefault: true, run: () => (this.events.onSave(entry().path), true) },
      ]),
      this.language.of([]),
      this.tabSize.of(s ? [EditorState.tabSize.of(s.tab_size), indentUnit.of(' '.repeat(s.tab_size))] : []),
      this.wrap.of(s?.word_wrap ? EditorView.lineWrapping : []),
      this.keys.of(this.keymapExtension),
      syntaxHighlighting(highlight),
      look,
      EditorView.updateListener.of((u) => {
        const e = entry();
        const path = e.path;
        if (u.docChanged && !e.dirty) {
          e.dirty = true;
          this.events.onDirty(path);
        }
        if ((u.selectionSet || u.docChanged) && path === this.shown) this.reportCursor(u.state);
      }),
    ];
  }

  private async loadLanguage(path: string, entry: Open): Promise<void> {
    const ext = await languageFor(path).load();
    if (this.open.get(path) === entry) entry.view.dispatch({ effects: this.language.reconfigure(ext) });
  }

  private reportCursor(state: EditorState): void {
    const head = state.selection.main.head;
    const line = state.doc.lineAt(head);
    this.events.onCursor(line.number, head - line.from + 1);
  }

  show(path: string | null): void {
    this.shown = path;
    for (const [p, e] of this.open) e.element.hidden = p !== path;
    const e = path === null ? undefined : this.open.get(path);
    if (e) {
      e.view.focus();
      this.reportCursor(e.view.state);
    }
  }

  /** Edited since the last load or save (known at once, unlike the tabs' rendered state). */
  isDirty(path: string): boolean {
    return this.open.get(path)?.dirty ?? false;
  }

  text(path: string): string | null {
    return this.open.get(path)?.view.state.doc.toString() ?? null;
  }

  /** After a save or a reload from disk: the view is clean again. */
  markClean(path: string): void {
    const e = this.open.get(path);
    if (e) e.dirty = false;
  }

  /** Puts the disk's text in a view (the change can be undone); the view is clean after. */
  replace(path: string, text: string): void {
    const e = this.open.get(path);
    if (!e) return;
    const doc = e.view.state.doc;
    if (doc.toString() !== text) {
      const anchor = Math.min(e.view.state.selection.main.anchor, text.length);
      e.view.dispatch({ changes: { from: 0, to: doc.length, insert: text }, selection: { anchor } });
    }
    e.dirty = false;
  }

  close(path: string): void {
    const e = this.open.get(path);
    if (!e) return;
    e.view.destroy();
    e.element.remove();
    this.open.delete(path);
  }

  rename(from: string, to: string): void {
    const e = this.open.get(from);
    if (!e || from === to) return;
    this.open.delete(from);
    this.open.set(to, e);
    e.path = to;
    e.element.dataset.path = to;
    if (this.shown === from) this.shown = to;
    void this.loadLanguage(to, e);
  }

  /** Applies editor settings to every view (and to views opened later). */
  async configure(settings: Settings): Promise<void> {
    const keymapChanged = settings.keymap !== this.settings?.keymap;
    this.settings = settings;
    if (keymapChanged) this.keymapExtension = await keymapFor(settings.keymap);
    for (const { view } of this.open.values()) {
      view.dispatch({
        effects: [
          this.tabSize.reconfigure([EditorState.tabSize.of(settings.tab_size), indentUnit.of(' '.repeat(settings.tab_size))]),
          this.wrap.reconfigure(settings.word_wrap ? EditorView.lineWrapping : []),
          this.keys.reconfigure(this.keymapExtension),
        ],
      });
    }
  }
}
