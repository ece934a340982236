// The web UI's build (Vite) and unit tests (Vitest, plain Node: the logic under test is pure).
import { defineConfig } from 'vite';

export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // The editor and terminal are big; they are split out and loaded after first paint.
    chunkSizeWarningLimit: 1500,
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
} as Parameters<typeof defineConfig>[0]);
