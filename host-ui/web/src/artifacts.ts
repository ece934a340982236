//! Artifacts as the view shows them, as data: a search hit's snippet split into plain and
//! matched parts (the store marks matches with `«»`), sizes people read, and the size of
//! content that came as base64.

/** A snippet as runs of text, `match` set on the words the query matched. */
export function snippetParts(snippet: string): Array<{ text: string; match: boolean }> {
  return snippet
    .split(/«([^»]*)»/)
    .map((text, i) => ({ text, match: i % 2 === 1 }))
    .filter((p) => p.text !== '');
}

/** `812 B`, `1.2 KiB`, `3.4 MiB`: powers of 1024, as the CLI prints them. */
export function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let n = bytes / 1024;
  let u = 0;
  // Compared as it will be printed, so 1,048,575 bytes reads `1.0 MiB`, not `1024.0 KiB`.
  while (Math.round(n * 10) >= 10240 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return `${n.toFixed(1)} ${units[u]}`;
}

/** How many bytes standard, padded base64 stands for. */
export function base64Bytes(encoded: string): number {
  const clean = encoded.replace(/\s+/g, '');
  const padding = clean.endsWith('==') ? 2 : clean.endsWith('=') ? 1 : 0;
  return Math.max(0, (clean.length / 4) * 3 - padding);
}
