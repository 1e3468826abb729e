// A single-page app: every route renders in the browser and reads the API at run time.
export const ssr = false;
export const prerender = false;
export const trailingSlash = 'never';
