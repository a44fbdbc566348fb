"use strict";
let token = sessionStorage.getItem("aischolar-token");
const $ = (id) => document.getElementById(id);

function status(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function api(method, path, body, isForm) {
  const headers = {};
  if (token) headers["Authorization"] = "Bearer " + token;
  const init = { method, headers };
  if (body !== undefined) {
    if (isForm) init.body = body;
    else { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((data && data.detail && String(data.detail)) || ("HTTP " + response.status));
  return data;
}

function show(signedIn) {
  $("app-section").hidden = !signedIn;
  $("logout-button").hidden = !signedIn;
  $("login-button").hidden = signedIn;
}

function item(text, attrs) {
  const li = document.createElement("li");
  li.textContent = text;
  for (const [k, v] of Object.entries(attrs || {})) li.setAttribute(k, v);
  return li;
}

async function refresh() {
  const data = await api("GET", "/api/documents");
  const list = $("documents");
  list.replaceChildren(...data.documents.map((d) =>
    item(d.title + " (" + d.chunks + " chunks)", { "data-document-id": d.id })));
}

async function login() {
  try {
    const data = await api("POST", "/api/auth/login",
      { username: $("login-username").value, password: $("login-password").value });
    token = data.access_token;
    sessionStorage.setItem("aischolar-token", token);
    $("login-password").value = "";
    const me = await api("GET", "/api/me");
    status("Signed in as " + me.username + ".");
    show(true);
    await refresh();
  } catch (e) { status("Sign-in failed: " + e.message, true); }
}

async function logout() {
  try { await api("POST", "/api/auth/logout"); } catch (e) { /* already gone */ }
  token = null;
  sessionStorage.removeItem("aischolar-token");
  show(false);
  status("Signed out.");
}

async function upload() {
  const file = $("upload-file").files[0];
  if (!file) { status("Choose a .txt or .md file first.", true); return; }
  const form = new FormData();
  form.append("file", file);
  if ($("upload-title").value) form.append("title", $("upload-title").value);
  try {
    const doc = await api("POST", "/api/documents/upload", form, true);
    status("Uploaded " + doc.title + " (" + doc.chunks + " chunks).");
    await refresh();
  } catch (e) { status("Upload failed: " + e.message, true); }
}

async function search() {
  try {
    const data = await api("POST", "/api/search", { query: $("search-input").value, top_k: 5 });
    $("search-results").replaceChildren(...data.results.map((r) =>
      item(r.title + ": " + r.text.slice(0, 160), { "data-document-id": r.document_id })));
    status(data.results.length + " result(s).");
  } catch (e) { status("Search failed: " + e.message, true); }
}

async function ask() {
  try {
    const data = await api("POST", "/api/ask", { question: $("ask-input").value, top_k: 5 });
    $("answer").textContent = data.answer;
    $("sources").replaceChildren(...data.sources.map((s) =>
      item(s.title, { "data-document-id": s.document_id })));
    status(data.cached ? "Answered from the cache." : "Answered.");
  } catch (e) { status("Ask failed: " + e.message, true); }
}

function bind(id, handler) { $(id).addEventListener("click", handler); }

bind("login-button", login);
bind("logout-button", logout);
bind("upload-button", upload);
bind("search-button", search);
bind("ask-button", ask);

if (token) {
  api("GET", "/api/me").then((me) => { status("Signed in as " + me.username + "."); show(true); return refresh(); })
    .catch(() => { token = null; sessionStorage.removeItem("aischolar-token"); show(false); });
}
