// The run page: read GeoJSON (pasted or uploaded), post an execute request as JSON to
// /processes/{id}/execution like any client, then follow the job on its page.
"use strict";

const form = document.getElementById("run-form");
const statusLine = document.getElementById("run-status");
const root = form.getAttribute("data-root"); // (form.dataset would be the inputs named "dataset")

function say(text, failed) {
  statusLine.textContent = text; // text only: never parsed as HTML
  statusLine.className = failed ? "problem" : "note";
}

function geometriesOf(geojson) {
  if (geojson.type === "FeatureCollection") return geojson.features || [];
  if (geojson.type === "Feature") return [geojson];
  return [geojson];
}

async function readGeoJSON() {
  const file = document.getElementById("geojson-file").files[0];
  const text = file ? await file.text() : document.getElementById("geojson").value;
  if (!text.trim()) throw new Error("paste GeoJSON or choose a file first");
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error("the GeoJSON is not valid JSON: " + err.message);
  }
}

function problemText(status, body) {
  if (body && body.detail) return status + " " + (body.title || "") + ": " + body.detail;
  return "the service answered " + status;
}

async function submit(event) {
  event.preventDefault();
  try {
    const datasets = Array.from(form.querySelectorAll("input[name=dataset]:checked"), (b) => b.value);
    if (datasets.length === 0) throw new Error("choose at least one dataset");
    const geometries = geometriesOf(await readGeoJSON());
    const process = document.getElementById("process").value;
    const inputs = { dataset_ids: datasets, aggregation: document.getElementById("aggregation").value };
    if (process === "extract") {
      if (geometries.length !== 1) throw new Error("extract takes exactly one geometry; use batch-extract");
      inputs.geometry = geometries[0];
    } else {
      inputs.geometries = geometries;
    }
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    const csrf = document.querySelector("meta[name=csrf-token]");
    if (csrf) headers["X-CSRF-Token"] = csrf.content;
    say("submitting " + geometries.length + " geometries…", false);
    const response = await fetch(root + "/processes/" + encodeURIComponent(process) + "/execution", {
      method: "POST",
      headers,
      body: JSON.stringify({ inputs }),
      credentials: "same-origin",
    });
    const body = await response.json().catch(() => null);
    if (response.status !== 201 || !body || !body.jobID) {
      say(problemText(response.status, body), true);
      return;
    }
    say("job " + body.jobID + " created; following it…", false);
    window.location.assign(root + "/jobs/" + encodeURIComponent(body.jobID));
  } catch (err) {
    say(err.message, true);
  }
}

function filterDatasets() {
  const words = document.getElementById("dataset-search").value.toLowerCase().split(/\s+/).filter(Boolean);
  form.querySelectorAll("label.dataset").forEach((label) => {
    const text = label.dataset.search;
    label.classList.toggle("hidden", !words.every((word) => text.includes(word)));
  });
}

function chooseProcess() {
  const asked = new URLSearchParams(window.location.search).get("process");
  if (asked) document.getElementById("process").value = asked;
}

form.addEventListener("submit", submit);
document.getElementById("dataset-search").addEventListener("input", filterDatasets);
chooseProcess();
