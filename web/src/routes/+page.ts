import { redirect } from '@sveltejs/kit';
import type { PageLoad } from './$types';

// The dashboard is the home page (it sends you on to Projects while there are none).
export const load: PageLoad = () => {
	redirect(307, '/dashboard');
};
