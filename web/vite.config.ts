import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The app is served by `adclick api` at / (its build in dist/); `npm run dev` proxies the
// API of the local stack, so the page and the API share an origin as in production.
export default defineConfig({
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 1000 },
  server: {
    fs: { allow: ['..'] }, // the operations in ../graphql/operations
    proxy: { '/graphql': { target: 'http://127.0.0.1:58080', ws: true } },
  },
});
