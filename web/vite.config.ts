import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vitest/config';

// `npm run dev` proxies the API and the OTLP receiver to a running `pystrument serve`.
const backend = process.env.PYSTRUMENT_URL ?? 'http://127.0.0.1:8000';

export default defineConfig({
	plugins: [sveltekit()],
	server: {
		proxy: {
			'/api': backend,
			'/v1': backend,
			'/health': backend
		}
	},
	test: {
		include: ['src/**/*.test.ts'],
		environment: 'node'
	}
});
