// The docs page: starts Swagger UI and keeps its password login honest.
//
// - Swagger UI keeps what the Authorize dialog sent (the password included) in its state and,
//   with persistAuthorization, in localStorage. The password is dropped before it is stored:
//   only the username and the access token are kept.
// - Logout ends the session at the gateway (POST /auth/logout) before forgetting the token.
// - A 401 invalid_token (the access token expired) is answered by one refresh
//   (POST /auth/refresh) and the request is sent again with the new token; when the session
//   cannot be refreshed, the answer says plainly to log in again.
//
// The configuration comes from the page's JSON block #docs-config: no inline script runs.
(() => {
  'use strict';

  const config = JSON.parse(document.getElementById('docs-config').textContent);
  const root = config.root;
  const scheme = config.scheme;
  const secrets = ['password', 'clientSecret'];
  const sent = new Map(); // url -> the request, to send it again after a refresh
  // Calls whose 401 is their own answer, not an expired token to refresh: a login's refusal, the
  // refresh itself (which would loop), a logout (the session is ending anyway) and cookie mode's
  // session, which has no bearer token. GET /auth/me and every other call are refreshed.
  const ownRefusal = new Set(
    ['/auth/login', '/auth/refresh', '/auth/logout', '/auth/session'].map((path) => root + path),
  );

  function withoutSecrets(auth) {
    const kept = { ...auth };
    for (const name of secrets) delete kept[name];
    return kept;
  }

  function accessToken(system) {
    return system.authSelectors.authorized().getIn([scheme, 'token', 'access_token']);
  }

  function endSession(token) {
    return fetch(`${root}/auth/logout`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
    }).catch(() => undefined); // the page forgets the token either way
  }

  const plugin = (system) => ({
    statePlugins: {
      auth: {
        wrapActions: {
          authorizeOauth2: (original) => (payload) =>
            original({ ...payload, auth: withoutSecrets(payload.auth) }),
          logout: (original) => (names) => {
            const token = names.includes(scheme) ? accessToken(system) : undefined;
            if (token) endSession(token);
            return original(names);
          },
        },
      },
    },
  });

  function errorOf(response) {
    if (response.body && typeof response.body === 'object') return response.body;
    try {
      return JSON.parse(response.text);
    } catch {
      return undefined;
    }
  }

  function sayLogInAgain(response, why) {
    const body = {
      error: 'invalid_token',
      error_description: `${why} Press Authorize and log in again.`,
    };
    const text = JSON.stringify(body, null, 2);
    return { ...response, body, obj: body, data: text, text };
  }

  async function refreshed(token) {
    try {
      const answer = await fetch(`${root}/auth/refresh`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}` },
      });
      return answer.ok ? await answer.json() : undefined;
    } catch {
      return undefined;
    }
  }

  function requestInterceptor(request) {
    if (!request.gatewayRetry) sent.set(request.url, request);
    return request;
  }

  async function responseInterceptor(response) {
    const request = sent.get(response.url);
    sent.delete(response.url);
    const ui = window.ui;
    if (response.status !== 401 || !request || request.gatewayRetry || !ui) return response;
    if (ownRefusal.has(new URL(response.url, location.href).pathname)) return response;
    if (errorOf(response)?.error !== 'invalid_token') return response;
    const token = accessToken(ui);
    if (!token) return response;
    const tokens = await refreshed(token);
    if (!tokens) {
      ui.authActions.logoutWithPersistOption([scheme]);
      return sayLogInAgain(response, 'Your session has ended.');
    }
    const auth = ui.authSelectors.authorized().get(scheme).toJS();
    ui.authActions.authorizeOauth2WithPersistOption({ auth, token: tokens });
    const headers = { ...request.headers, Authorization: `Bearer ${tokens.access_token}` };
    return ui.fn.fetch({
      ...request,
      headers,
      gatewayRetry: true,
      requestInterceptor: undefined,
      responseInterceptor: undefined,
    });
  }

  window.ui = SwaggerUIBundle({
    ...config.parameters,
    url: config.openapi_url,
    oauth2RedirectUrl: config.oauth2_redirect_url,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    plugins: [plugin],
    requestInterceptor,
    responseInterceptor,
  });
  window.ui.initOAuth(config.init_oauth);
})();
