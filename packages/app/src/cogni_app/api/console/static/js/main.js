// The console's shell: login (operator token in sessionStorage), navigation, hash routing.

import { app, auth, ApiError } from "./api.js";
import { errorBox, route } from "./ui.js";
import * as overview from "./pages/overview.js";
import * as accounts from "./pages/accounts.js";
import * as runs from "./pages/runs.js";
import * as reconcile from "./pages/reconcile.js";
import * as crons from "./pages/crons.js";
import * as deletions from "./pages/deletions.js";

const PAGES = { overview, accounts, runs, threads: runs, reconcile, crons, deletions };
const $ = (id) => document.getElementById(id);
let current = null; // the page's cleanup (timers, streams)

function showLogin(message = "") {
  if (current) current();
  current = null;
  $("login").hidden = false;
  $("nav").hidden = true;
  $("logout").hidden = true;
  $("page").replaceChildren();
  $("login-error").textContent = message;
}

async function render() {
  if (!auth.token) return showLogin();
  $("login").hidden = true;
  $("nav").hidden = false;
  $("logout").hidden = false;
  const { page, args, query } = route();
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === (page === "threads" ? "runs" : page));
  if (current) current();
  current = null;
  const root = $("page");
  root.replaceChildren();
  const mod = PAGES[page] || overview;
  try {
    current = (await mod.render(root, { page, args, query })) || null;
  } catch (err) {
    if (!(err instanceof ApiError && (err.status === 401 || err.status === 403))) root.append(errorBox(err));
  }
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const token = $("token").value.trim();
  auth.set(token);
  try {
    await app("/console/api/reconcile"); // any operator route: proves the token before showing data
    $("token").value = "";
    if (!location.hash) location.hash = "#/overview";
    render();
  } catch (err) {
    auth.clear();
    showLogin(err instanceof ApiError && err.status === 403 ? "Refused: wrong operator token." : `Refused: ${err.message}`);
  }
});

$("logout").addEventListener("click", () => { auth.clear(); showLogin("Logged out."); });
window.addEventListener("console:unauthorized", (e) => { auth.clear(); showLogin(`Refused: ${e.detail}`); });
window.addEventListener("hashchange", render);
render();
