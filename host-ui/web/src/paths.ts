//! Workspace-relative paths as the UI handles them: `/`-separated, no leading `/`, `` is the root.

export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function join(dir: string, name: string): string {
  return dir ? `${dir}/${name}` : name;
}

/** Whether `path` is `ancestor` or lies under it. */
export function isWithin(path: string, ancestor: string): boolean {
  return ancestor === '' || path === ancestor || path.startsWith(`${ancestor}/`);
}

/** `path` after `from` (or something under it) was renamed to `to`. */
export function renamed(path: string, from: string, to: string): string {
  if (path === from) return to;
  return isWithin(path, from) ? to + path.slice(from.length) : path;
}

/**
 * Checks a name typed for a new or renamed entry; the error names the problem. A name may
 * contain `/` to put the entry in a subfolder (that is how a move is typed).
 */
export function checkName(name: string): string | null {
  const trimmed = name.trim();
  if (!trimmed) return 'a name is needed';
  if (trimmed.startsWith('/')) return 'use a path inside the workspace (no leading /)';
  if (trimmed.split('/').some((part) => part === '..' || part === '.' || part === '')) return 'no empty, `.` or `..` parts';
  return null;
}
