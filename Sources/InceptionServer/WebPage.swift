/// The page at GET /: drop or choose a photo, see the top 5 classes as bars. Self-contained
/// (inline CSS and JavaScript, no external assets). `/?demo=URL` fetches the image at URL
/// (same origin, e.g. /samples/cat.jpg) and classifies it on load.
enum WebPage {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Inception V1 — classify a photo</title>
    <style>
      :root { --fg: #1d2330; --muted: #5d6678; --accent: #2f6fed; --bg: #f5f7fb; --card: #fff; --line: #dfe4ee; }
      * { box-sizing: border-box; }
      body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
             color: var(--fg); background: var(--bg); }
      main { max-width: 860px; margin: 0 auto; padding: 28px 20px 40px; }
      h1 { font-size: 22px; margin: 0 0 4px; }
      .sub { color: var(--muted); margin: 0 0 20px; }
      #drop { display: flex; flex-direction: column; align-items: center; justify-content: center; gap: 10px;
              min-height: 150px; padding: 20px; border: 2px dashed #b8c2d6; border-radius: 12px; background: var(--card);
              text-align: center; cursor: pointer; transition: border-color .15s, background .15s; }
      #drop.over { border-color: var(--accent); background: #eef3ff; }
      #drop strong { font-size: 16px; }
      #drop .hint { color: var(--muted); font-size: 13px; }
      button { font: inherit; padding: 7px 16px; border: 0; border-radius: 8px; background: var(--accent); color: #fff; cursor: pointer; }
      button:focus-visible { outline: 3px solid #9db9f7; outline-offset: 2px; }
      #file { display: none; }
      #result { display: grid; grid-template-columns: 240px 1fr; gap: 22px; margin-top: 22px; align-items: start; }
      #result[hidden] { display: none; }
      #preview { width: 240px; max-height: 240px; object-fit: contain; border-radius: 10px; background: #e8ecf3; border: 1px solid var(--line); }
      #status { min-height: 22px; margin: 14px 0 0; color: var(--muted); }
      #status.error { color: #b42318; font-weight: 600; }
      ol#predictions { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 12px; }
      .prediction .row { display: flex; justify-content: space-between; gap: 12px; margin-bottom: 4px; }
      .prediction .label { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
      .prediction .pct { font-variant-numeric: tabular-nums; color: var(--muted); }
      .track { height: 14px; border-radius: 7px; background: #e4e9f2; overflow: hidden; }
      .bar { height: 100%; min-width: 2px; border-radius: 7px; background: linear-gradient(90deg, #2f6fed, #5b9cff); }
      .prediction:first-child .bar { background: linear-gradient(90deg, #1a9b5b, #3ccf8e); }
      footer { margin-top: 28px; color: var(--muted); font-size: 12px; }
      code { background: #e9edf5; padding: 1px 5px; border-radius: 4px; }
      @media (max-width: 560px) { #result { grid-template-columns: 1fr; } #preview { width: 100%; } }
    </style>
    </head>
    <body>
    <main>
      <h1>Inception V1 (GoogLeNet)</h1>
      <p class="sub">Drop a JPEG or PNG photo to see the five most likely ImageNet classes.</p>
      <div id="drop" tabindex="0" role="button" aria-label="Drop a photo here or choose a file">
        <strong>Drop a photo here</strong>
        <span class="hint">or</span>
        <button id="choose" type="button">Choose a file…</button>
        <input id="file" type="file" accept="image/jpeg,image/png">
      </div>
      <p id="status" role="status" aria-live="polite"></p>
      <section id="result" hidden>
        <img id="preview" alt="The photo being classified">
        <ol id="predictions" aria-label="Top 5 classes"></ol>
      </section>
      <footer>API: <code>POST /v1/classify?top=5</code> with the image as the body ·
        <code>POST /v1/features?endpoint=Mixed_5c</code> · <a href="/metrics">metrics</a></footer>
    </main>
    <script>
    (function () {
      "use strict";
      var drop = document.getElementById("drop"), file = document.getElementById("file");
      var statusLine = document.getElementById("status"), result = document.getElementById("result");
      var preview = document.getElementById("preview"), list = document.getElementById("predictions");
      var previewURL = null;

      function setStatus(text, isError) {
        statusLine.textContent = text;
        statusLine.className = isError ? "error" : "";
        document.body.setAttribute("data-state", isError ? "error" : (text ? "busy" : "idle"));
      }

      function render(json) {
        list.textContent = "";
        json.predictions.forEach(function (p) {
          var pct = (p.probability * 100);
          var li = document.createElement("li");
          li.className = "prediction";
          li.setAttribute("data-label", p.label);
          li.setAttribute("data-probability", String(p.probability));
          var row = document.createElement("div"); row.className = "row";
          var label = document.createElement("span"); label.className = "label"; label.textContent = p.label;
          label.title = p.label + " (class " + p.index + ")";
          var value = document.createElement("span"); value.className = "pct";
          value.textContent = (pct >= 10 ? pct.toFixed(1) : pct.toFixed(2)) + "%";
          row.appendChild(label); row.appendChild(value);
          var track = document.createElement("div"); track.className = "track";
          var bar = document.createElement("div"); bar.className = "bar";
          bar.style.width = Math.max(0, Math.min(100, pct)).toFixed(2) + "%";
          track.appendChild(bar);
          li.appendChild(row); li.appendChild(track);
          list.appendChild(li);
        });
        var t = json.timing_ms || {};
        setStatus(json.model + " · " + Math.round(t.total) + " ms (queue " + Math.round(t.queue) +
                  " ms, inference " + Math.round(t.inference) + " ms for a batch of " + (json.batch_size || 1) + ")", false);
        document.body.setAttribute("data-state", "done");
      }

      function classify(blob) {
        if (previewURL) URL.revokeObjectURL(previewURL);
        previewURL = URL.createObjectURL(blob);
        preview.src = previewURL;
        result.hidden = false;
        list.textContent = "";
        setStatus("Classifying…", false);
        return fetch("/v1/classify?top=5", {
          method: "POST",
          headers: { "Content-Type": blob.type || "application/octet-stream" },
          body: blob
        }).then(function (response) {
          return response.json().then(function (json) {
            if (!response.ok) throw new Error(json.error || ("HTTP " + response.status));
            render(json);
          }, function () { throw new Error("HTTP " + response.status); });
        }).catch(function (error) { setStatus("Could not classify: " + error.message, true); });
      }

      function pick(files) {
        if (files && files.length) classify(files[0]);
      }

      document.getElementById("choose").addEventListener("click", function (e) { e.stopPropagation(); file.click(); });
      drop.addEventListener("click", function () { file.click(); });
      drop.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); file.click(); } });
      file.addEventListener("change", function () { pick(file.files); file.value = ""; });
      ["dragenter", "dragover"].forEach(function (type) {
        drop.addEventListener(type, function (e) { e.preventDefault(); drop.classList.add("over"); });
      });
      ["dragleave", "drop"].forEach(function (type) {
        drop.addEventListener(type, function (e) { e.preventDefault(); drop.classList.remove("over"); });
      });
      drop.addEventListener("drop", function (e) { pick(e.dataTransfer && e.dataTransfer.files); });
      document.addEventListener("paste", function (e) {
        var items = (e.clipboardData && e.clipboardData.files) || [];
        pick(items);
      });

      var demo = new URLSearchParams(location.search).get("demo");
      if (demo) {
        var url = new URL(demo, location.href);
        if (url.origin !== location.origin) {
          setStatus("Only images from this server can be used as a demo.", true);
        } else {
          setStatus("Loading " + url.pathname + "…", false);
          fetch(url.href).then(function (r) {
            if (!r.ok) throw new Error("HTTP " + r.status + " for " + url.pathname);
            return r.blob();
          }).then(classify).catch(function (error) { setStatus("Could not load the demo image: " + error.message, true); });
        }
      } else {
        document.body.setAttribute("data-state", "idle");
      }
    })();
    </script>
    </body>
    </html>
    """#
}
