// SvelteKit config: a static single-page app written into the Python package, which serves it at `/`.
import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** @type {import('@sveltejs/kit').Config} */
const config = {
	preprocess: vitePreprocess(),
	kit: {
		adapter: adapter({
			pages: '../analysis_api/pystrument_analysis/web_dist',
			assets: '../analysis_api/pystrument_analysis/web_dist',
			// Every route is rendered in the browser; the server answers unknown paths with this page.
			fallback: 'index.html',
			precompress: false,
			strict: true
		}),
		// One script and one stylesheet: a first visit to a deep link (a trace) starts its API call without
		// waiting for a second round of route chunks. The whole UI is small enough to load at once.
		output: { bundleStrategy: 'single' }
	}
};

export default config;
