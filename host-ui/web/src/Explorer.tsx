//! The file explorer: the workspace as a tree (folders listed when opened), open a file,
//! create, rename or move (type a path, or drag onto a folder), delete after confirming.
//! Changes made outside the IDE arrive as `workspace.files` events and refresh what is shown.

import { useCallback, useEffect, useRef, useState } from 'react';
import type { Rpc } from './rpc';
import type { Ask } from './dialog';
import { type Entry, forget, staleListings, visibleRows } from './tree';
import { baseName, checkName, join, parentOf, renamed } from './paths';
import { Icon } from './icons';

type Props = {
  rpc: Rpc;
  ask: Ask;
  /** Subscribes to batches of changed paths; returns the unsubscribe. */
  onFileChanges: (listener: (paths: string[]) => void) => () => void;
  openFile: (path: string) => void;
  /** A file or folder was renamed/moved (`to`) or deleted (`to` null) from here. */
  moved: (from: string, to: string | null) => void;
  report: (error: unknown) => void;
  active: string | null;
};

export function Explorer({ rpc, ask, onFileChanges, openFile, moved, report, active }: Props) {
  const listings = useRef(new Map<string, Entry[]>());
  const open = useRef(new Set<string>());
  const [, redraw] = useState(0);
  const [selected, setSelected] = useState<{ path: string; dir: boolean } | null>(null);
  const [dropTarget, setDropTarget] = useState<string | null>(null);

  const load = useCallback(
    async (dir: string) => {
      try {
        const answer = await rpc.invoke<{ entries: Entry[] }>('pit/workspace', 'list', { path: dir });
        listings.current.set(dir, answer.entries);
        // The page is usable once the workspace is listed: the time-to-interactive mark.
        if (dir === '' && performance.getEntriesByName('symphony:interactive').length === 0) requestAnimationFrame(() => performance.mark('symphony:interactive'));
      } catch (e) {
        // A folder that went away is forgotten; anything else is worth saying.
        if (dir !== '' && (e as { kind?: string }).kind === 'not-found') forget(listings.current, open.current, dir);
        else report(e);
      }
      redraw((n) => n + 1);
    },
    [rpc, report],
  );

  useEffect(() => {
    void load('');
    return onFileChanges((paths) => {
      for (const dir of staleListings(paths, listings.current.keys())) void load(dir);
    });
  }, [load, onFileChanges]);

  const toggle = (path: string) => {
    if (open.current.has(path)) open.current.delete(path);
    else {
      open.current.add(path);
      if (!listings.current.has(path)) void load(path);
    }
    redraw((n) => n + 1);
  };

  /** Where new entries go: the selected folder, or the selected file's folder. */
  const targetDir = () => (selected ? (selected.dir ? selected.path : parentOf(selected.path)) : '');

  const create = async (dir: boolean) => {
    const base = targetDir();
    const a = await ask({ title: dir ? 'New folder' : 'New file', message: base ? `In ${base}/` : 'In the workspace root', input: '', check: checkName, confirm: 'Create' });
    if (!a) return;
    const path = join(base, a.text.trim());
    try {
      await rpc.invoke('pit/workspace', 'create', { path, dir });
      if (base) open.current.add(base);
      await load(parentOf(path));
      setSelected({ path, dir });
      if (!dir) openFile(path);
    } catch (e) {
      report(e);
    }
  };

  const move = async (from: string, to: string) => {
    if (from === to) return;
    try {
      await rpc.invoke('pit/workspace', 'rename', { from, to });
      forget(listings.current, open.current, from);
      moved(from, to);
      setSelected((s) => (s ? { ...s, path: renamed(s.path, from, to) } : s));
      // The moved entry is revealed: every folder above it opens.
      const above: string[] = [];
      for (let d = parentOf(to); d !== ''; d = parentOf(d)) above.unshift(d);
      for (const d of above) open.current.add(d);
      await Promise.all([...new Set(['', parentOf(from), ...above])].map((d) => load(d)));
    } catch (e) {
      report(e);
    }
  };

  const rename = async () => {
    if (!selected) return;
    const a = await ask({
      title: 'Rename or move',
      message: `${selected.path} — type a new name, or a path to move it`,
      input: selected.path,
      check: checkName,
      confirm: 'Rename',
    });
    if (a) await move(selected.path, a.text.trim());
  };

  const remove = async () => {
    if (!selected) return;
    const a = await ask({
      title: `Delete ${baseName(selected.path)}?`,
      message: selected.dir ? `The folder ${selected.path} and everything in it will be deleted from disk.` : `${selected.path} will be deleted from disk.`,
      confirm: 'Delete',
      danger: true,
    });
    if (!a) return;
    try {
      await rpc.invoke('pit/workspace', 'delete', { path: selected.path });
      forget(listings.current, open.current, selected.path);
      moved(selected.path, null);
      setSelected(null);
      await load(parentOf(selected.path));
    } catch (e) {
      report(e);
    }
  };

  const rows = visibleRows(listings.current, open.current);
  return (
    <section className="explorer" aria-label="Explorer">
      <header className="side-header">
        <span>Explorer</span>
        <span className="toolbar">
          <button title="New file" aria-label="New file" onClick={() => void create(false)}><Icon name="newFile" /></button>
          <button title="New folder" aria-label="New folder" onClick={() => void create(true)}><Icon name="newFolder" /></button>
          <button title="Rename or move (F2)" aria-label="Rename" disabled={!selected} onClick={() => void rename()}><Icon name="rename" /></button>
          <button title="Delete (Del)" aria-label="Delete" disabled={!selected} onClick={() => void remove()}><Icon name="trash" /></button>
          <button title="Refresh" aria-label="Refresh" onClick={() => [...listings.current.keys()].forEach((d) => void load(d))}><Icon name="refresh" /></button>
        </span>
      </header>
      <ul
        className={`tree ${dropTarget === '' ? 'drop' : ''}`}
        role="tree"
        tabIndex={0}
        onKeyDown={(e) => {
          if (e.key === 'F2') void rename();
          if (e.key === 'Delete') void remove();
        }}
        onDragOver={(e) => {
          e.preventDefault();
          setDropTarget('');
        }}
        onDragLeave={() => setDropTarget(null)}
        onDrop={(e) => {
          e.preventDefault();
          setDropTarget(null);
          const from = e.dataTransfer.getData('text/x-symphony-path');
          if (from) void move(from, baseName(from));
        }}
      >
        {rows.map((r) => (
          <li
            key={r.path}
            role="treeitem"
            aria-expanded={r.dir ? r.open : undefined}
            aria-selected={selected?.path === r.path}
            data-path={r.path}
            className={`row ${r.dir ? 'dir' : 'file'} ${selected?.path === r.path ? 'selected' : ''} ${active === r.path ? 'active' : ''} ${dropTarget === r.path ? 'drop' : ''}`}
            style={{ paddingLeft: 8 + r.depth * 14 }}
            draggable
            onDragStart={(e) => e.dataTransfer.setData('text/x-symphony-path', r.path)}
            onDragOver={(e) => {
              if (!r.dir) return;
              e.preventDefault();
              e.stopPropagation();
              setDropTarget(r.path);
            }}
            onDrop={(e) => {
              if (!r.dir) return;
              e.preventDefault();
              e.stopPropagation();
              setDropTarget(null);
              const from = e.dataTransfer.getData('text/x-symphony-path');
              if (from && from !== r.path && !r.path.startsWith(`${from}/`)) void move(from, join(r.path, baseName(from)));
            }}
            onClick={() => {
              setSelected({ path: r.path, dir: r.dir });
              if (r.dir) toggle(r.path);
              else openFile(r.path);
            }}
          >
            <span className="twisty">{r.dir ? (r.open ? '▾' : '▸') : ''}</span>
            {r.name}
          </li>
        ))}
      </ul>
    </section>
  );
}
