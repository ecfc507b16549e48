// The example SPA: log in, list venues a page at a time, create, edit with If-Match, log out.
// The session lives in the gateway's HttpOnly cookie: a reload or a second tab is logged in
// as long as that session is, and the gateway refreshes the access token behind it.

import { ApiError, gatewayClient } from "./api.js";

const $ = (id) => document.getElementById(id);
const FIELDS = ["name", "address", "city", "country", "timezone", "capacity"];

let api;
let pageLink = null; // the page on screen (null: the first)
let nextLink = null;
let editing = null; // { id, etag } while a venue is being edited

function say(text, { error = false } = {}) {
  $("message").textContent = text;
  $("message").className = error ? "error" : "";
}

function show(loggedIn, profile) {
  $("login").hidden = loggedIn;
  $("venues").hidden = !loggedIn;
  $("logout").hidden = !loggedIn;
  $("who").hidden = !loggedIn;
  $("who").textContent = loggedIn ? `Logged in as ${profile.email || profile.sub}` : "";
}

/** What to tell the user about a failed call; a 401 means the session is over. */
function explain(error, what) {
  if (!(error instanceof ApiError)) throw error;
  if (error.status === 401) {
    show(false);
    say("Your session has ended. Log in again.", { error: true });
    return;
  }
  const reasons = {
    403: "You are not allowed to do that.",
    409: "A venue with this name already exists in this city. Choose another name.",
    412: "Someone else changed this venue after you opened it. Your changes were not saved: " +
      "the form now shows the current version; edit it again.",
    428: "The change was sent without the venue's version.",
    429: "Too many attempts; wait a moment.",
  };
  say(`${what}: ${reasons[error.status] || error.message}`, { error: true });
}

async function loadPage(link) {
  try {
    const { data } = await api.listVenues(link);
    pageLink = link;
    nextLink = data.next;
    const rows = $("rows");
    rows.replaceChildren();
    for (const venue of data.items) {
      const row = document.createElement("tr");
      for (const value of [venue.name, venue.city, venue.country, venue.capacity]) {
        const cell = document.createElement("td");
        cell.textContent = value;
        row.append(cell);
      }
      const action = document.createElement("td");
      const edit = document.createElement("button");
      edit.type = "button";
      edit.textContent = "Edit";
      edit.setAttribute("aria-label", `Edit ${venue.name}`);
      edit.addEventListener("click", () => openEditor(venue.id));
      action.append(edit);
      row.append(action);
      rows.append(row);
    }
    $("next-page").disabled = !nextLink;
    rows.dataset.loads = String(Number(rows.dataset.loads || 0) + 1); // for the tests
    return true;
  } catch (error) {
    explain(error, "Could not load the venues");
    return false;
  }
}

function formValues() {
  const form = $("editor");
  const venue = {};
  for (const field of FIELDS) venue[field] = form.elements[field].value.trim();
  venue.capacity = Number(venue.capacity);
  venue.country = venue.country.toUpperCase();
  return venue;
}

function fillForm(venue) {
  for (const field of FIELDS) $("editor").elements[field].value = venue ? venue[field] : "";
}

function closeEditor() {
  editing = null;
  fillForm(null);
  $("editor-title").textContent = "New venue";
  $("save").textContent = "Create venue";
  $("cancel").hidden = true;
}

async function openEditor(id) {
  try {
    const { data, etag } = await api.getVenue(id);
    editing = { id, etag };
    fillForm(data);
    $("editor-title").textContent = `Edit ${data.name}`;
    $("save").textContent = "Save changes";
    $("cancel").hidden = false;
    say("");
  } catch (error) {
    explain(error, "Could not open the venue");
  }
}

async function save(event) {
  event.preventDefault();
  const venue = formValues();
  try {
    if (editing) {
      const { data } = await api.updateVenue(editing.id, venue, editing.etag);
      say(`Saved ${data.name}.`);
    } else {
      const { data } = await api.createVenue(venue);
      say(`Created ${data.name}.`);
    }
    closeEditor();
    await loadPage(pageLink);
  } catch (error) {
    explain(error, editing ? "Could not save the venue" : "Could not create the venue");
    if (error instanceof ApiError && error.status === 412 && editing) {
      const { id } = editing;
      const message = $("message").textContent;
      await openEditor(id); // the current version and its ETag
      say(message, { error: true });
    }
  }
}

async function login(event) {
  event.preventDefault();
  const form = $("login");
  try {
    const { data } = await api.login(form.elements.username.value, form.elements.password.value);
    form.reset();
    show(true, data);
    say("");
    await loadPage(null);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      say("Wrong email or password.", { error: true });
    } else {
      explain(error, "Could not log in");
    }
  }
}

async function logout() {
  try {
    await api.logout();
  } catch (error) {
    explain(error, "Could not log out");
    return;
  }
  closeEditor();
  show(false);
  say("You are logged out.");
}

async function start() {
  const config = await (await fetch("config.json")).json();
  api = gatewayClient(config.gateway);
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("editor").addEventListener("submit", save);
  $("cancel").addEventListener("click", closeEditor);
  $("reload").addEventListener("click", () => loadPage(pageLink));
  $("first-page").addEventListener("click", () => loadPage(null));
  $("next-page").addEventListener("click", () => loadPage(nextLink));
  try {
    const { data } = await api.me(); // the cookie survives a reload: still logged in?
    show(true, data);
    await loadPage(null);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) explain(error, "Could not start");
    show(false);
  }
  document.body.dataset.ready = "true";
}

start();
