import { redirect } from '@sveltejs/kit';
import type { PageLoad } from './$types';

// The projects list is the home page until a dashboard exists.
export const load: PageLoad = () => {
	redirect(307, '/projects');
};
