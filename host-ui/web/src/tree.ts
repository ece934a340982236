//! The explorer's tree as data: folder listings loaded on demand, which folders are open, the
//! rows to draw, and which listings a batch of file-change events makes stale.

import { isWithin, join, parentOf } from './paths';

export type Entry = { name: string; dir: boolean; size: number; mtime_ms: number };
export type Row = { path: string; name: string; dir: boolean; depth: number; open: boolean };

/** Rows in display order: folders first (as listed), children of open folders under them. */
export function visibleRows(listings: ReadonlyMap<string, Entry[]>, open: ReadonlySet<string>, dir = '', depth = 0): Row[] {
  const rows: Row[] = [];
  for (const e of listings.get(dir) ?? []) {
    const path = join(dir, e.name);
    const isOpen = e.dir && open.has(path);
    rows.push({ path, name: e.name, dir: e.dir, depth, open: isOpen });
    if (isOpen) rows.push(...visibleRows(listings, open, path, depth + 1));
  }
  return rows;
}

/** The loaded listings to fetch again after these paths changed on disk. */
export function staleListings(changed: string[], loaded: Iterable<string>): string[] {
  const have = new Set(loaded);
  const stale = new Set<string>();
  for (const path of changed) {
    const parent = parentOf(path);
    if (have.has(parent)) stale.add(parent);
    if (have.has(path)) stale.add(path);
  }
  return [...stale].sort();
}

/** Forgets the listings (and open state) of a folder that was removed or moved away. */
export function forget(listings: Map<string, Entry[]>, open: Set<string>, path: string): void {
  for (const key of [...listings.keys()]) if (key !== '' && isWithin(key, path)) listings.delete(key);
  for (const key of [...open]) if (isWithin(key, path)) open.delete(key);
}
