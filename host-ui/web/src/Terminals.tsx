//! The terminal panel: xterm.js views of real PTYs (`pit/terminal`), several at once, each
//! resized with its panel; a shell that exits closes its tab.

import { useEffect, useRef, useState } from 'react';
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';
import type { Rpc } from './rpc';
import { Icon } from './icons';
import type { Tokens } from './theme';
import { TerminalKeys } from './keys';

const MONO = "'JetBrains Mono', 'DejaVu Sans Mono', 'Liberation Mono', monospace";

type Props = { rpc: Rpc; tokens: Tokens; fontSize: number; report: (e: unknown) => void; onClose: () => void };

export function Terminals({ rpc, tokens, fontSize, report, onClose }: Props) {
  const next = useRef(1);
  const [tabs, setTabs] = useState<number[]>([]);
  const [active, setActive] = useState<number | null>(null);
  const add = () => {
    const key = next.current++;
    setTabs((t) => [...t, key]);
    setActive(key);
  };
  // The panel opens with one terminal.
  useEffect(() => {
    if (next.current === 1) add();
  }, []);
  const closed = (key: number) => {
    setTabs((t) => {
      const rest = t.filter((k) => k !== key);
      setActive((a) => (a === key ? (rest[rest.length - 1] ?? null) : a));
      return rest;
    });
  };
  return (
    <section className="terminals" aria-label="Terminals">
      <header className="panel-tabs">
        {tabs.map((k, i) => (
          <span key={k} className={`panel-tab ${k === active ? 'active' : ''}`} role="tab" aria-selected={k === active} onClick={() => setActive(k)}>
            Terminal {i + 1}
          </span>
        ))}
        <button title="New terminal" aria-label="New terminal" onClick={add}><Icon name="plus" /></button>
        <span className="spacer" />
        <button title="Hide the panel" aria-label="Hide terminals" onClick={onClose}><Icon name="close" /></button>
      </header>
      <div className="terminal-stack">
        {tabs.map((k) => (
          <TerminalView key={k} rpc={rpc} tokens={tokens} fontSize={fontSize} shown={k === active} report={report} onExit={() => closed(k)} />
        ))}
        {tabs.length === 0 && <p className="empty">No terminal. <button onClick={add}>Open one</button></p>}
      </div>
    </section>
  );
}

function xtermTheme(tokens: Tokens) {
  return { background: tokens['editor.background'], foreground: tokens.foreground, cursor: tokens['editor.cursor'], selectionBackground: tokens['editor.selection'] };
}

function TerminalView({ rpc, tokens, fontSize, shown, report, onExit }: { rpc: Rpc; tokens: Tokens; fontSize: number; shown: boolean; report: (e: unknown) => void; onExit: () => void }) {
  const host = useRef<HTMLDivElement>(null);
  const term = useRef<Terminal | null>(null);
  const fit = useRef<FitAddon | null>(null);

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const t = new Terminal({ fontFamily: MONO, fontSize, theme: xtermTheme(tokens), cursorBlink: true, scrollback: 5000 });
    const f = new FitAddon();
    t.loadAddon(f);
    t.open(element);
    term.current = t;
    fit.current = f;
    try {
      f.fit();
    } catch {
      // Not laid out yet; the resize observer fits it.
    }
    let id: number | null = null;
    let gone = false;
    let unsubscribe = () => {};
    const keys = new TerminalKeys((data) => id !== null && void rpc.invoke('pit/terminal', 'write', { terminal: id, data }).catch(report));
    const input = t.onData((data) => keys.typed(data));
    const resized = t.onResize(({ cols, rows }) => id !== null && void rpc.invoke('pit/terminal', 'resize', { terminal: id, cols, rows }).catch(() => {}));
    const observer = new ResizeObserver(() => {
      if (element.offsetParent === null) return;
      try {
        f.fit();
      } catch {
        // Hidden or zero-sized: nothing to fit.
      }
    });
    observer.observe(element);
    void (async () => {
      try {
        const size = { cols: t.cols, rows: t.rows };
        const opened = await rpc.invoke<{ terminal: number }>('pit/terminal', 'open', size);
        if (gone) {
          void rpc.invoke('pit/terminal', 'close', { terminal: opened.terminal }).catch(() => {});
          return;
        }
        id = opened.terminal;
        element.dataset.terminal = String(id);
        keys.opened();
        // Fitted while the open was under way: the PTY learns its real size.
        if (t.cols !== size.cols || t.rows !== size.rows) void rpc.invoke('pit/terminal', 'resize', { terminal: id, cols: t.cols, rows: t.rows }).catch(() => {});
        unsubscribe = await rpc.subscribe({ topic: 'terminal', terminal: id }, (event) => {
          const e = event as { kind: string; data?: string; code?: number };
          if (e.kind === 'output' && e.data) t.write(e.data);
          if (e.kind === 'exit') {
            keys.exited();
            id = null;
            onExit();
          }
        });
      } catch (e) {
        keys.exited();
        report(e);
      }
    })();
    return () => {
      gone = true;
      keys.exited();
      observer.disconnect();
      input.dispose();
      resized.dispose();
      unsubscribe();
      if (id !== null) void rpc.invoke('pit/terminal', 'close', { terminal: id }).catch(() => {});
      t.dispose();
    };
    // A terminal lives as long as its tab; theme and size changes are applied below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [rpc]);

  useEffect(() => {
    if (!term.current) return;
    term.current.options.theme = xtermTheme(tokens);
    term.current.options.fontSize = fontSize;
    try {
      fit.current?.fit();
    } catch {
      // Hidden: fitted when shown.
    }
  }, [tokens, fontSize]);

  useEffect(() => {
    if (shown) {
      try {
        fit.current?.fit();
      } catch {
        // Not laid out yet.
      }
      term.current?.focus();
    }
  }, [shown]);

  return <div className="terminal-view" ref={host} hidden={!shown} />;
}
