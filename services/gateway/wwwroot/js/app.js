// The shell: sign-in with an API key, the views each role may see, hash navigation and the error banner.
import { api, session, ApiError } from './api.js';
import { showNetwork, hideNetwork } from './network.js';
import { initClient, showClient, hideClient, resetClient } from './client.js';
import { initOperator, showOperator, hideOperator, resetOperator } from './operator.js';
import { $, setText } from './ui.js';

const views = {
  network: { show: showNetwork, hide: hideNetwork, roles: null },
  client: { show: showClient, hide: hideClient, roles: ['client', 'admin'] },
  operator: { show: showOperator, hide: hideOperator, roles: ['operator'] },
};

let account = null;
let current = null;

/** Shows what went wrong: the problem's detail, as the gateway wrote it for people. */
function report(error) {
  if (error?.name === 'AbortError') return;
  console.error(error);
  setText('#alert-text', error instanceof ApiError ? error.message : `Something went wrong: ${error?.message ?? error}`);
  $('#alert').hidden = false;
}

function clearAlert() {
  $('#alert').hidden = true;
  setText('#alert-text', '');
}

const allowed = name => views[name] && (views[name].roles === null || views[name].roles.includes(account?.role));

function homeView() {
  if (account?.role === 'operator') return 'operator';
  if (allowed('client')) return 'client';
  return 'network';
}

function route() {
  const wanted = location.hash.slice(1).split('/')[0];
  // Other fragments (the skip link's #main) are not views: stay where we are.
  if (wanted && !views[wanted]) return;
  const name = allowed(wanted) ? wanted : current ?? homeView();
  if (name === current) return;
  if (current) {
    views[current].hide();
    $(`#view-${current}`).hidden = true;
  }
  current = name;
  $(`#view-${name}`).hidden = false;
  for (const link of document.querySelectorAll('nav a[data-view]')) {
    link.hidden = !allowed(link.dataset.view);
    if (link.dataset.view === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  views[name].show(report);
}

function go(name) {
  if (location.hash === `#${name}`) route();
  else location.hash = name;
}

function renderSession() {
  $('#sign-in').hidden = !!account;
  $('#signed-in').hidden = !account;
  setText('#who', account ? `${account.role} ${account.accountId}` : '');
  for (const link of document.querySelectorAll('nav a[data-view]')) link.hidden = !allowed(link.dataset.view);
}

async function signIn(event) {
  event.preventDefault();
  const field = $('#api-key');
  const key = field.value.trim();
  if (!key) return;
  clearAlert();
  session.signIn(key);
  try {
    account = await api('/v1/account');
  } catch (error) {
    session.signOut();
    report(error);
    return;
  }
  field.value = '';
  renderSession();
  go(homeView());
}

function signOut() {
  session.signOut();
  account = null;
  resetClient();
  resetOperator();
  clearAlert();
  renderSession();
  if (current && current !== 'network') {
    views[current].hide();
    $(`#view-${current}`).hidden = true;
    current = null;
  }
  go('network');
}

async function start() {
  initClient(report);
  initOperator(report);
  $('#sign-in').addEventListener('submit', signIn);
  $('#sign-out').addEventListener('click', signOut);
  $('#alert-close').addEventListener('click', clearAlert);
  window.addEventListener('hashchange', route);
  if (session.key) {
    try {
      account = await api('/v1/account');
    } catch (error) {
      // A key revoked or from another network: forget it, and say why.
      session.signOut();
      report(error);
    }
  }
  renderSession();
  route();
}

start();
