/// The dashboard's one page: self-contained (style and script inline, nothing fetched from the
/// network), read-only. Its script polls `api/state` every 2 s and fetches `api/report` (the
/// report's tables and figures) when a result has arrived; the token of the page's own address,
/// if any, goes with each request.
enum DashboardPage {
    static let html = #"""
    <!DOCTYPE html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <title>PruneSweep dashboard</title>
    <style>
    body { font-family: DejaVu Sans, Arial, sans-serif; margin: 1.2em 2em; color: #111; }
    h1 { font-size: 1.4em; margin: 0 0 0.2em 0; } h2 { font-size: 1.15em; margin: 1.2em 0 0.4em 0; }
    .sub { color: #555; font-size: 0.9em; }
    .bar { height: 14px; background: #e6e6e6; border-radius: 3px; overflow: hidden; display: flex; max-width: 900px; margin: 0.5em 0; }
    .bar span { display: block; height: 100%; } .done { background: #2b7a3d; } .running { background: #d9a400; } .failed { background: #b8322a; }
    #progress { font-family: DejaVu Sans Mono, monospace; font-size: 1.05em; }
    table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.88em; }
    th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; } th { background: #f3f3f3; }
    td.num { text-align: right; font-variant-numeric: tabular-nums; }
    .lost { color: #b8322a; font-weight: bold; } .idle { color: #777; }
    .failure td { vertical-align: top; } .msg { font-family: DejaVu Sans Mono, monospace; white-space: pre-wrap; max-width: 70em; }
    #report figure { margin: 1em 0; } #report svg { max-width: 100%; height: auto; } figcaption { font-style: italic; font-size: 0.9em; }
    dl { display: grid; grid-template-columns: max-content auto; gap: 2px 1em; font-size: 0.88em; } dt { font-weight: bold; } dd { margin: 0; }
    pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; }
    #stale { color: #b8322a; font-weight: bold; }
    </style>
    </head>
    <body>
    <h1 id="title">PruneSweep</h1>
    <div class="sub" id="where"></div>
    <div class="bar" id="bar"></div>
    <div id="progress">loading…</div> <span id="stale"></span>
    <h2>Workers</h2>
    <table><thead><tr><th>worker</th><th>host</th><th>device</th><th>state</th><th>task</th><th>epoch</th><th>images/s</th><th>epoch s</th><th>test acc.</th><th>last heard</th></tr></thead>
    <tbody id="workers"></tbody></table>
    <h2>Failures</h2>
    <div id="failures">none</div>
    <div id="report">no results yet</div>
    <script>
    "use strict";
    const token = new URLSearchParams(location.search).get("token");
    const suffix = token ? "?token=" + encodeURIComponent(token) : "";
    let shownResults = -1;
    function text(value) { const d = document.createElement("div"); d.textContent = value == null ? "" : String(value); return d.innerHTML; }
    function fixed(value, digits) { return value == null ? "" : Number(value).toFixed(digits); }
    function ago(seconds) { return seconds < 60 ? seconds.toFixed(1) + " s ago" : (seconds / 60).toFixed(1) + " min ago"; }
    function render(s) {
      document.getElementById("title").textContent = "PruneSweep: " + s.sweep + " (preset " + s.preset + ")";
      document.getElementById("where").textContent = s.runDirectory + " · up " + (s.elapsedSeconds / 60).toFixed(1) + " min";
      document.getElementById("progress").textContent = s.progress;
      const t = s.tasks, total = Math.max(t.total, 1);
      document.getElementById("bar").innerHTML = [["done", t.done], ["running", t.running], ["failed", t.failed]]
        .map(([k, n]) => '<span class="' + k + '" style="width:' + (100 * n / total) + '%" title="' + k + ' ' + n + '"></span>').join("");
      document.getElementById("workers").innerHTML = s.workers.map(w =>
        "<tr><td>" + text(w.name) + "</td><td>" + text(w.host) + "</td><td>" + text(w.device) + " × " + w.threads + "</td>" +
        '<td class="' + w.state + '">' + w.state + "</td><td>" + text(w.task || "") + "</td>" +
        '<td class="num">' + (w.epoch != null ? w.epoch + "/" + w.epochs : "") + '</td><td class="num">' + fixed(w.imagesPerSecond, 0) +
        '</td><td class="num">' + fixed(w.epochSeconds, 1) + '</td><td class="num">' + (w.testAccuracy != null ? (100 * w.testAccuracy).toFixed(1) + "%" : "") +
        '</td><td class="num">' + ago(s.time - w.lastHeard) + "</td></tr>").join("") || '<tr><td colspan="10">no worker has joined yet</td></tr>';
      document.getElementById("failures").innerHTML = s.failures.length === 0 ? "none" :
        "<table><thead><tr><th>when</th><th>worker</th><th>task</th><th>outcome</th><th>message</th></tr></thead><tbody>" +
        s.failures.map(f => '<tr class="failure"><td>' + new Date(f.time * 1000).toLocaleTimeString() + "</td><td>" + text(f.worker) +
          "</td><td>" + text(f.task) + "</td><td>" + (f.givenUp ? "given up" : "will retry") + '</td><td class="msg">' + text(f.message) + "</td></tr>").join("") +
        "</tbody></table>";
      if (s.results !== shownResults) {
        shownResults = s.results;
        fetch("api/report" + suffix).then(r => r.ok ? r.text() : Promise.reject(r.status)).then(html => {
          document.getElementById("report").innerHTML = html;
        }).catch(() => { shownResults = -1; });
      }
    }
    function poll() {
      fetch("api/state" + suffix).then(r => r.ok ? r.json() : Promise.reject(r.status)).then(s => {
        document.getElementById("stale").textContent = "";
        render(s);
      }).catch(e => {
        document.getElementById("stale").textContent = "(the coordinator does not answer: " + e + ")";
      }).finally(() => setTimeout(poll, 2000));
    }
    poll();
    </script>
    </body>
    </html>
    """#
}
