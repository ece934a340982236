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
  it('read in powers of 1000', () => {
    expect([0, 999, 1000, 1500, 999_999, 1_000_000, 2_500_000_000].map(size)).toEqual(['0 B', '999 B', '1.0 KB', '1.5 KB', '1000.0 KB', '1.0 MB', '2.5 GB']);
  });
  it('of base64 content', () => {
    expect(['', 'eA==', 'eHk=', 'eHl6', 'AAECAwQF\nBgc='].map(base64Bytes)).toEqual([0, 1, 2, 3, 8]);
  });
});
