import { describe, expect, it } from 'vitest';
import { base64Bytes, size, snippetParts } from './artifacts';

describe('artifact snippets', () => {
  it('split into plain and matched runs', () => {
    expect(snippetParts('fn «main»() { «main»2 }')).toEqual([
      { text: 'fn ', match: false },
      { text: 'main', match: true },
      { text: '() { ', match: false },
      { text: 'main', match: true },
      { text: '2 }', match: false },
    ]);
    expect(snippetParts('«whole»')).toEqual([{ text: 'whole', match: true }]);
    expect(snippetParts('no match markers')).toEqual([{ text: 'no match markers', match: false }]);
    // A lone marker is text, not a match.
    expect(snippetParts('a « b')).toEqual([{ text: 'a « b', match: false }]);
  });
});

describe('sizes', () => {
  it('read in powers of 1024, as the CLI prints them', () => {
    expect([0, 1023, 1024, 1536, 5 * 2 ** 20, 3 * 2 ** 30].map(size)).toEqual(['0 B', '1023 B', '1.0 KiB', '1.5 KiB', '5.0 MiB', '3.0 GiB']);
  });
  it('just under the next unit, not as 1024 of this one', () => {
    expect([2 ** 20 - 1, 2 ** 20 - 60, 2 ** 30 - 1].map(size)).toEqual(['1.0 MiB', '1023.9 KiB', '1.0 GiB']);
  });
  it('of base64 content', () => {
    expect(['', 'eA==', 'eHk=', 'eHl6', 'AAECAwQF\nBgc='].map(base64Bytes)).toEqual([0, 1, 2, 3, 8]);
  });
});
