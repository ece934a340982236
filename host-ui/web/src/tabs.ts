//! The editor's open files as plain data (the text itself lives in each tab's CodeMirror
//! state): which are open, which is active, which have unsaved edits or changed on disk.

export type Tab = {
  path: string;
  /** Edited since the last load or save. */
  dirty: boolean;
  /** The modification time the text was read at (what a save expects to find on disk). */
  mtimeMs: number;
  /** The file changed (`changed`) or went (`deleted`) on disk while this tab had edits. */
  disk: 'same' | 'changed' | 'deleted';
};

export type Tabs = { tabs: Tab[]; active: string | null };

export const noTabs: Tabs = { tabs: [], active: null };

export function openTab(s: Tabs, path: string, mtimeMs: number): Tabs {
  if (s.tabs.some((t) => t.path === path)) return { ...s, active: path };
  return { tabs: [...s.tabs, { path, dirty: false, mtimeMs, disk: 'same' }], active: path };
}

/** Closes a tab; the neighbour to its right (else left) becomes active if it was. */
export function closeTab(s: Tabs, path: string): Tabs {
  const i = s.tabs.findIndex((t) => t.path === path);
  if (i < 0) return s;
  const tabs = s.tabs.filter((t) => t.path !== path);
  if (s.active !== path) return { tabs, active: s.active };
  const next = tabs[Math.min(i, tabs.length - 1)];
  return { tabs, active: next ? next.path : null };
}

export function updateTab(s: Tabs, path: string, change: Partial<Tab>): Tabs {
  return { ...s, tabs: s.tabs.map((t) => (t.path === path ? { ...t, ...change } : t)) };
}

/** Follows a rename or move of a file or of a folder holding open files. */
export function renameTabs(s: Tabs, rename: (path: string) => string): Tabs {
  return { tabs: s.tabs.map((t) => ({ ...t, path: rename(t.path) })), active: s.active === null ? null : rename(s.active) };
}

export function activeTab(s: Tabs): Tab | undefined {
  return s.tabs.find((t) => t.path === s.active);
}
