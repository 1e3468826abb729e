import type { PageLoad } from './$types';

export const load: PageLoad = ({ params, url }) => ({ id: params.id, project: url.searchParams.get('project') });
