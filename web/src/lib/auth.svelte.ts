/**
 * Whether the server wants its API token (PYSTRUMENT_API_TOKEN) and whether this browser has logged in.
 * Logging in sets an HttpOnly cookie (the token itself is never stored by the UI); any 401 from the API
 * brings the login screen back.
 */
import { api, ApiError, setUnauthorizedHandler } from './api';

class Auth {
	required = $state(false);
	authenticated = $state(true);
	checked = $state(false);
	error = $state<string | null>(null);

	constructor() {
		setUnauthorizedHandler(() => {
			this.required = true;
			this.authenticated = false;
		});
	}

	get needLogin(): boolean {
		return this.required && !this.authenticated;
	}

	async check(): Promise<void> {
		try {
			const status = await api.authStatus();
			this.required = status.auth_required;
			this.authenticated = status.authenticated;
		} catch {
			// A server without the auth endpoints: the API is open, and a 401 would still show the login.
		} finally {
			this.checked = true;
		}
	}

	/** True when the token was accepted; the cookie is then set by the server. */
	async login(token: string): Promise<boolean> {
		this.error = null;
		try {
			const status = await api.login(token);
			this.authenticated = status.authenticated;
			return status.authenticated;
		} catch (err) {
			this.error = err instanceof ApiError || err instanceof Error ? err.message : String(err);
			return false;
		}
	}

	async logout(): Promise<void> {
		await api.logout().catch(() => {});
		this.authenticated = false;
	}
}

export const auth = new Auth();
