// The studio's code editor: CodeMirror 6 over the template page's textarea, and a preview that follows the text.
// Bundled by esbuild into templates/studio/editor.js (served from /static, never a CDN): `make editor` rebuilds it.
import { EditorView, basicSetup } from "codemirror";
import { html } from "@codemirror/lang-html";
import { StreamLanguage } from "@codemirror/language";
import { jinja2 } from "@codemirror/legacy-modes/mode/jinja2";

const DELAY = 300; // ms after the last keystroke before the preview is asked for
// The page's style nonce (its CSP allows <style> with it only): CodeMirror's own styles carry it
const NONCE = document.currentScript ? document.currentScript.nonce : "";

function start() {
  const form = document.getElementById("template-form");
  const textarea = form && form.querySelector("textarea[name=text]");
  const previewForm = document.getElementById("preview-form");
  if (!textarea || !previewForm) return;
  const name = form.dataset.template;
  const editable = !textarea.readOnly;
  const view = new EditorView({
    doc: textarea.value,
    extensions: [
      basicSetup,
      name.endsWith(".html.j2") ? html() : StreamLanguage.define(jinja2),
      EditorView.editable.of(editable),
      EditorView.cspNonce.of(NONCE),
      EditorView.lineWrapping,
      EditorView.updateListener.of((update) => {
        if (update.docChanged) {
          textarea.value = update.state.doc.toString();
          later();
        }
      }),
    ],
  });
  textarea.hidden = true;
  textarea.insertAdjacentElement("afterend", view.dom);
  view.dom.id = "code";

  let timer = null;
  let asked = 0;
  function later() {
    clearTimeout(timer);
    timer = setTimeout(refresh, DELAY);
  }

  async function refresh() {
    const mine = ++asked;
    const body = new URLSearchParams(new FormData(previewForm));
    body.set("source", textarea.value);
    body.set("format", "json");
    const status = document.getElementById("preview-status");
    status.textContent = "Rendering…";
    let answer;
    try {
      const response = await fetch("/preview", { method: "POST", body, credentials: "same-origin" });
      answer = await response.json();
    } catch (e) {
      answer = { error: "the studio did not answer: " + e };
    }
    if (mine !== asked) return; // a later edit's preview is on its way
    show(answer);
  }

  function show(answer) {
    const status = document.getElementById("preview-status");
    if (answer.error) {
      status.textContent = answer.error;
      status.className = "error";
      return;
    }
    status.className = "check " + answer.size_check.status.toLowerCase();
    status.textContent = `${answer.size_check.status}: ${answer.size_check.detail} — subscriber ${answer.subscriber_id}, variant ${answer.variant}`;
    document.getElementById("live-subject").textContent = answer.subject;
    for (const frame of document.querySelectorAll("iframe.live")) frame.src = answer.frame || "about:blank";
    document.getElementById("live-text").textContent = answer.text;
    const table = document.getElementById("live-headers");
    table.replaceChildren(...answer.headers.map(([k, v]) => {
      const row = document.createElement("tr");
      const th = document.createElement("th");
      const td = document.createElement("td");
      th.textContent = k;
      td.textContent = v;
      row.append(th, td);
      return row;
    }));
  }

  previewForm.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  previewForm.addEventListener("change", later);
  document.getElementById("live").hidden = false;
  refresh();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
