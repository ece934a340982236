//! The IDE's shell: activity bar, side views (explorer, extensions, settings), editor tabs,
//! the terminal panel and the status bar. It owns the one connection's subscriptions
//! (workspace files, settings, caret events) and hands their events to the views.

import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import type { Rpc } from './rpc';
import { useDialog } from './dialog';
import { Explorer } from './Explorer';
import { Extensions, type CaretInfo } from './Extensions';
import { SettingsView } from './SettingsView';
import { Terminals } from './Terminals';
import { Editors } from './editors';
import { activeTab, closeTab, noTabs, openTab, renameTabs, type Tabs, updateTab } from './tabs';
import { baseName, isWithin, renamed } from './paths';
import { languageFor } from './languages';
import { defaultSettings, type Settings, type SettingsSchema } from './settings';
import { cssVariables, isLight, themeTokens, type Tokens } from './theme';
import { Listeners } from './listeners';
import { Runs } from './Runs';
import { Artifacts } from './Artifacts';
import { Panels } from './Panels';
import { addRun, applyProgress, isMelody, type RunView } from './runs';
import { Icon } from './icons';

type View = 'explorer' | 'extensions' | 'panels' | 'artifacts' | 'settings';
type Notice = { id: number; kind: 'error' | 'info'; text: string };
type FileText = { text: string; mtime_ms: number; size: number };

export function App({ rpc }: { rpc: Rpc }) {
  const [ask, dialog] = useDialog();
  const [view, setView] = useState<View>('explorer');
  const [tabs, setTabs] = useState<Tabs>(noTabs);
  const tabsRef = useRef(tabs);
  tabsRef.current = tabs;
  const [settings, setSettings] = useState<Settings>(defaultSettings);
  const [schema, setSchema] = useState<SettingsSchema | null>(null);
  const [tokens, setTokens] = useState<Tokens>(() => themeTokens('dark'));
  const [motifs, setMotifs] = useState<string[]>([]);
  const [bottom, setBottom] = useState<'terminal' | 'runs' | null>(null);
  /** Terminals stay alive while their panel is hidden, once opened. */
  const [terminalsStarted, setTerminalsStarted] = useState(false);
  const [runs, setRuns] = useState<RunView[]>([]);
  const [notices, setNotices] = useState<Notice[]>([]);
  const [cursor, setCursor] = useState<[number, number] | null>(null);
  const [connection, setConnection] = useState<string | null>(null);
  const editorHost = useRef<HTMLDivElement>(null);
  const editors = useRef<Editors | null>(null);
  const saving = useRef(new Set<string>());
  /** The modification time each open file was last read or saved at, known at once (the
   *  tabs' copy is only as new as the last render, and disk events do not wait for renders). */
  const mtimes = useRef(new Map<string, number>());
  const fileChanges = useMemo(() => new Listeners<string[]>(), []);
  const caretEvents = useMemo(() => new Listeners<void>(), []);

  const notify = useCallback((kind: Notice['kind'], text: string) => {
    const id = Date.now() + Math.random();
    setNotices((n) => [...n.slice(-4), { id, kind, text }]);
    setTimeout(() => setNotices((n) => n.filter((x) => x.id !== id)), kind === 'error' ? 8000 : 4000);
  }, []);
  const report = useCallback((e: unknown) => notify('error', e instanceof Error ? e.message : String(e)), [notify]);

  // --- editors -------------------------------------------------------------------------
  const save = useCallback(
    async (path: string, overwrite = false) => {
      const tab = tabsRef.current.tabs.find((t) => t.path === path);
      const text = editors.current?.text(path);
      if (!tab || text == null) return;
      saving.current.add(path);
      try {
        const expected = overwrite || tab.disk === 'deleted' ? {} : { expected_mtime_ms: tab.mtimeMs };
        const done = await rpc.invoke<{ mtime_ms: number }>('pit/workspace', 'write', { path, text, ...expected });
        mtimes.current.set(path, done.mtime_ms);
        if (editors.current?.text(path) === text) {
          editors.current?.markClean(path);
          setTabs((s) => updateTab(s, path, { dirty: false, mtimeMs: done.mtime_ms, disk: 'same' }));
        } else setTabs((s) => updateTab(s, path, { mtimeMs: done.mtime_ms, disk: 'same' }));
        notify('info', `Saved ${path}`);
      } catch (e) {
        const message = (e as Error).message;
        if (/changed on disk|deleted on disk/.test(message)) {
          const a = await ask({
            title: `${baseName(path)} changed on disk`,
            message: `${message}. Overwrite the file on disk with your version, or load the disk's version (your edits can then be undone)?`,
            choices: ['Load from disk'],
            confirm: 'Overwrite',
            danger: true,
          });
          if (a?.button === 'Overwrite') void save(path, true);
          if (a?.button === 'Load from disk') void reload(path);
        } else report(e);
      } finally {
        saving.current.delete(path);
      }
    },
    // `reload` is stable in behaviour and defined below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [rpc, ask, notify, report],
  );

  const reload = useCallback(
    async (path: string) => {
      try {
        const file = await rpc.invoke<FileText>('pit/workspace', 'read', { path });
        mtimes.current.set(path, file.mtime_ms);
        editors.current?.replace(path, file.text);
        setTabs((s) => updateTab(s, path, { dirty: false, mtimeMs: file.mtime_ms, disk: 'same' }));
      } catch (e) {
        report(e);
      }
    },
    [rpc, report],
  );

  /** Keeps the edited text: the next save overwrites what is on disk now. */
  const keepMine = async (path: string) => {
    try {
      const file = await rpc.invoke<FileText>('pit/workspace', 'read', { path });
      mtimes.current.set(path, file.mtime_ms);
      setTabs((s) => updateTab(s, path, { mtimeMs: file.mtime_ms, disk: 'same' }));
    } catch (e) {
      report(e);
    }
  };

  // The views live as long as the page; their events reach the current callbacks.
  const saveRef = useRef(save);
  saveRef.current = save;
  useEffect(() => {
    if (!editorHost.current || editors.current) return;
    editors.current = new Editors(editorHost.current, {
      onDirty: (path) => setTabs((s) => updateTab(s, path, { dirty: true })),
      onSave: (path) => void saveRef.current(path),
      onCursor: (line, col) => setCursor([line, col]),
    });
  }, []);

  const openFile = useCallback(
    async (path: string) => {
      const ed = editors.current;
      if (!ed) return;
      if (!ed.has(path)) {
        try {
          const file = await rpc.invoke<FileText>('pit/workspace', 'read', { path });
          if (!ed.has(path)) {
            ed.add(path, file.text);
            mtimes.current.set(path, file.mtime_ms);
          }
          setTabs((s) => openTab(s, path, file.mtime_ms));
        } catch (e) {
          report(e);
          return;
        }
      } else setTabs((s) => openTab(s, path, 0));
    },
    [rpc, report],
  );

  useEffect(() => {
    editors.current?.show(tabs.active);
    if (!tabs.active) setCursor(null);
  }, [tabs.active]);

  const close = async (path: string) => {
    const tab = tabs.tabs.find((t) => t.path === path);
    if (tab?.dirty) {
      const a = await ask({ title: `Save changes to ${baseName(path)}?`, message: 'Your edits are lost if you close without saving.', choices: ["Don't save"], confirm: 'Save' });
      if (!a) return;
      if (a.button === 'Save') await save(path);
      if (tabsRef.current.tabs.find((t) => t.path === path)?.dirty && a.button === 'Save') return;
    }
    editors.current?.close(path);
    setTabs((s) => closeTab(s, path));
  };

  // A file or folder renamed or deleted in the explorer: open tabs follow.
  const moved = useCallback((from: string, to: string | null) => {
    const ed = editors.current;
    for (const t of tabsRef.current.tabs) {
      if (!isWithin(t.path, from)) continue;
      if (to === null) {
        ed?.close(t.path);
        setTabs((s) => closeTab(s, t.path));
      } else ed?.rename(t.path, renamed(t.path, from, to));
    }
    if (to !== null) setTabs((s) => renameTabs(s, (p) => renamed(p, from, to)));
  }, []);

  // Files changed on disk: clean tabs follow the disk; tabs with edits are told.
  const onDiskChange = useCallback(
    async (paths: string[]) => {
      const ed = editors.current;
      for (const { path } of tabsRef.current.tabs) {
        if (!ed || saving.current.has(path) || !paths.some((p) => isWithin(path, p))) continue;
        try {
          const file = await rpc.invoke<FileText>('pit/workspace', 'read', { path });
          if (file.mtime_ms === mtimes.current.get(path) || saving.current.has(path)) continue;
          mtimes.current.set(path, file.mtime_ms);
          if (ed.text(path) === file.text) setTabs((s) => updateTab(s, path, { mtimeMs: file.mtime_ms, disk: 'same' }));
          else if (!ed.isDirty(path)) {
            ed.replace(path, file.text);
            setTabs((s) => updateTab(s, path, { mtimeMs: file.mtime_ms, dirty: false, disk: 'same' }));
          } else setTabs((s) => updateTab(s, path, { disk: 'changed' }));
        } catch (e) {
          if ((e as { kind?: string }).kind === 'not-found') setTabs((s) => updateTab(s, path, { disk: 'deleted' }));
        }
      }
    },
    [rpc],
  );

  // --- subscriptions -------------------------------------------------------------------
  useEffect(() => {
    const stops: Array<Promise<() => void>> = [
      rpc.subscribe({ topic: 'workspace.files' }, (event) => {
        const paths = (event as { paths: string[] }).paths ?? [];
        fileChanges.emit(paths);
        void onDiskChange(paths);
      }),
      rpc.subscribe({ topic: 'settings' }, (event) => setSettings(event as Settings)),
      rpc.subscribe({ topic: 'caret.events' }, () => caretEvents.emit()),
      rpc.subscribe({ topic: 'melody.progress' }, (event) => setRuns((r) => applyProgress(r, event))),
    ];
    rpc.onClose((reason) => setConnection(reason));
    void rpc.invoke<Settings>('pit/settings', 'get', {}).then(setSettings, report);
    void rpc.invoke<SettingsSchema>('pit/settings', 'schema', {}).then(setSchema, report);
    return () => stops.forEach((s) => void s.then((stop) => stop()));
  }, [rpc, fileChanges, caretEvents, onDiskChange, report]);

  // Motifs that may restyle the UI (for the theme list).
  useEffect(() => {
    const load = () =>
      void rpc.invoke<CaretInfo[]>('pit/carets', 'list', {}).then(
        (list) => setMotifs(list.filter((c) => c.manifest.kind === 'motif' && c.grants.some((g) => g.capability === 'ui.theme')).map((c) => c.manifest.id)),
        () => {},
      );
    load();
    return caretEvents.listen(load);
  }, [rpc, caretEvents]);

  // --- settings applied live -----------------------------------------------------------
  useEffect(() => {
    void editors.current?.configure(settings);
    document.documentElement.style.setProperty('--editor-font-size', `${settings.font_size}px`);
    let stale = false;
    const motif = settings.theme.startsWith('motif:') ? settings.theme.slice('motif:'.length) : null;
    if (!motif) setTokens(themeTokens(settings.theme));
    else
      rpc.invoke<Record<string, unknown>>(`caret/${motif}`, '@theme', '').then(
        (t) => !stale && setTokens(themeTokens(settings.theme, t)),
        (e) => {
          report(new Error(`the theme of ${motif} is unavailable (${(e as Error).message}); using dark`));
          if (!stale) setTokens(themeTokens('dark'));
        },
      );
    return () => {
      stale = true;
    };
  }, [settings, rpc, report]);

  useEffect(() => {
    const root = document.documentElement;
    for (const [k, v] of Object.entries(cssVariables(tokens))) root.style.setProperty(k, v);
    root.dataset.theme = settings.theme;
    root.style.colorScheme = isLight(tokens) ? 'light' : 'dark';
  }, [tokens, settings.theme]);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.ctrlKey && e.key === '`') {
        e.preventDefault();
        toggleTerminal();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);

  function toggleTerminal() {
    setTerminalsStarted(true);
    setBottom((b) => (b === 'terminal' ? null : 'terminal'));
  }

  const runMelody = async (path: string) => {
    if (editors.current?.isDirty(path)) await save(path);
    try {
      const answer = await rpc.invoke<{ job: number; name: string; nodes: string[] }>('pit/melodies', 'run', { path });
      setRuns((r) => addRun(r, path, answer));
      setBottom('runs');
    } catch (e) {
      report(e);
    }
  };

  const current = activeTab(tabs);
  const melodyOpen = !!current && current.path.endsWith('.toml') && isMelody(current.path, editors.current?.text(current.path) ?? null);
  return (
    <div className="ide" data-ready={schema ? 'true' : 'false'}>
      <nav className="activity-bar" aria-label="Views">
        {(
          [
            ['explorer', 'files', 'Explorer'],
            ['extensions', 'extensions', 'Extensions'],
            ['panels', 'panels', 'Panels'],
            ['artifacts', 'artifacts', 'Artifacts'],
            ['settings', 'settings', 'Settings'],
          ] as const
        ).map(([v, icon, label]) => (
          <button key={v} className={view === v ? 'active' : ''} title={label} aria-label={label} aria-pressed={view === v} onClick={() => setView(v)}>
            <Icon name={icon} size={22} />
          </button>
        ))}
        <span className="spacer" />
        <button title="Terminal (Ctrl+`)" aria-label="Toggle terminal" aria-pressed={bottom === 'terminal'} onClick={toggleTerminal}>
          <Icon name="terminal" size={22} />
        </button>
      </nav>
      <aside className="side">
        <div hidden={view !== 'explorer'}>
          <Explorer rpc={rpc} ask={ask} onFileChanges={fileChanges.listen} openFile={(p) => void openFile(p)} moved={moved} report={report} active={tabs.active} />
        </div>
        {view === 'extensions' && <Extensions rpc={rpc} ask={ask} report={report} onCaretEvents={caretEvents.listen} />}
        {view === 'panels' && <Panels rpc={rpc} onCaretEvents={caretEvents.listen} />}
        {view === 'artifacts' && <Artifacts rpc={rpc} />}
        {view === 'settings' && <SettingsView rpc={rpc} schema={schema} settings={settings} motifs={motifs} />}
      </aside>
      <main className="main">
        <div className="tab-bar" role="tablist">
          {tabs.tabs.map((t) => (
            <span key={t.path} role="tab" aria-selected={t.path === tabs.active} data-path={t.path} className={`tab ${t.path === tabs.active ? 'active' : ''}`} onClick={() => setTabs((s) => ({ ...s, active: t.path }))} title={t.path}>
              {baseName(t.path)}
              {t.dirty && <span className="dirty" aria-label="unsaved">●</span>}
              <button
                className="close"
                aria-label={`Close ${t.path}`}
                onClick={(e) => {
                  e.stopPropagation();
                  void close(t.path);
                }}
              >
                <Icon name="close" size={12} />
              </button>
            </span>
          ))}
          {melodyOpen && current && (
            <button className="run-melody primary" onClick={() => void runMelody(current.path)}>
              ▶ Run melody
            </button>
          )}
        </div>
        {current && current.disk !== 'same' && (
          <div className="banner warning" role="alert">
            {current.disk === 'changed' ? `${current.path} changed on disk while you were editing it.` : `${current.path} was deleted on disk; saving creates it again.`}
            {current.disk === 'changed' && <button onClick={() => void reload(current.path)}>Load from disk</button>}
            {current.disk === 'changed' && <button onClick={() => void keepMine(current.path)}>Keep mine</button>}
          </div>
        )}
        <div className="editor-host">
          <div className="editor-views" ref={editorHost} />
          {tabs.tabs.length === 0 && (
            <div className="welcome">
              <h1>Symphony</h1>
              <p>Open a file from the explorer. Ctrl+S saves, Ctrl+F finds, Ctrl+` opens a terminal.</p>
            </div>
          )}
        </div>
        <div className="bottom-panel" hidden={bottom === null}>
          <nav className="bottom-tabs" aria-label="Panels">
            <button className={bottom === 'terminal' ? 'active' : ''} onClick={() => { setTerminalsStarted(true); setBottom('terminal'); }}>
              Terminal
            </button>
            <button className={bottom === 'runs' ? 'active' : ''} onClick={() => setBottom('runs')}>
              Melody runs{runs.some((r) => !r.finished) ? ' ●' : ''}
            </button>
          </nav>
          <div className="bottom-body">
            <div hidden={bottom !== 'terminal'} style={{ flex: 1, display: 'flex' }}>
              {terminalsStarted && <Terminals rpc={rpc} tokens={tokens} fontSize={settings.font_size} report={report} onClose={() => setBottom(null)} />}
            </div>
            <div hidden={bottom !== 'runs'} style={{ flex: 1 }}>
              <Runs runs={runs} cancel={(job) => void rpc.invoke('pit/melodies', 'cancel', { job }).catch(report)} />
            </div>
          </div>
        </div>
      </main>
      <footer className="status-bar">
        <span className={connection ? 'disconnected' : 'connected'}>{connection ? `Disconnected: ${connection}` : 'Connected'}</span>
        <span className="spacer" />
        {current && <span>{languageFor(current.path).name}</span>}
        {cursor && <span>Ln {cursor[0]}, Col {cursor[1]}</span>}
        <span>{settings.keymap !== 'default' ? settings.keymap : ''}</span>
        <span>Spaces: {settings.tab_size}</span>
      </footer>
      <div className="notices" aria-live="polite">
        {notices.map((n) => (
          <div key={n.id} className={`notice ${n.kind}`} role={n.kind === 'error' ? 'alert' : 'status'}>
            {n.text}
          </div>
        ))}
      </div>
      {dialog}
    </div>
  );
}
