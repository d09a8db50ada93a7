// Harvest Files: the operator's private files, as a client of /v1/files only. A directory's
// listing page by page (listFiles: limit, last_evaluated_key, x-soracom-next-key), into
// directories and back (the path is in the address: #/files/logs/), a file's metadata
// (getFileMetadata, HEAD), download (getFile's 302 to the signed URL, followed), upload
// (putFile with the file's Content-Type), delete a file or an empty directory (after a
// confirmation; deleteDirectory's refusal of one that is not empty is shown as the API says it).
import { v1, v1Raw } from "../api.js";
import { busy, confirmAction, count, h, say, section, table, timeEl } from "../dom.js";

export const PAGE_SIZES = [10, 50, 100];
const DEFAULT_SIZE = 50;

/** A path as /v1/files/private/ takes it: each segment escaped, the root as "//" (as
 * soracom-cli sends it); a trailing "/" names a directory. */
export function apiPath(path) {
  if (path === "/") return "/files/private//";
  return "/files/private/" + path.slice(1).split("/").map(encodeURIComponent).join("/");
}

/** The console's address of a path: #/files/logs/ for a directory, #/files/logs/a.txt for a file. */
export function pageHref(path) {
  return "#/files" + path.split("/").map(encodeURIComponent).join("/");
}

/** What the route's parts name: {dir, file} (file null for a directory's page). */
export function located(args) {
  const joined = "/" + args.join("/");
  if (joined.endsWith("/")) return { dir: joined, file: null };
  return { dir: joined.slice(0, joined.lastIndexOf("/") + 1), file: joined };
}

/** The directory above `dir` ("/logs/a/" -> "/logs/"); the root's is itself. */
export function parentOf(dir) {
  if (dir === "/") return "/";
  const inner = dir.slice(0, -1);
  return inner.slice(0, inner.lastIndexOf("/") + 1);
}

/** The path an upload goes to: `name` under `dir`, a leading "/" ignored ("a/b.txt" makes a). */
export function uploadPath(dir, name) {
  return dir + name.trim().replace(/^\/+/, "");
}

/** Bytes as "1,234 bytes (1.2 KiB)". */
export function size(n) {
  const text = `${count(n)} ${n === 1 ? "byte" : "bytes"}`;
  const units = ["KiB", "MiB", "GiB"];
  let value = n;
  let unit = null;
  for (const u of units) {
    if (value < 1024) break;
    value /= 1024;
    unit = u;
  }
  return unit ? `${text} (${value.toFixed(1)} ${unit})` : text;
}

const nameOf = (path) => path.slice(path.lastIndexOf("/", path.length - 2) + 1);

function crumbs(dir, file) {
  const parts = dir.split("/").slice(1, -1);
  const links = [h("li", {}, h("a", { href: pageHref("/") }, "private"))];
  let at = "/";
  for (const part of parts) {
    at += part + "/";
    links.push(h("li", {}, h("a", { href: pageHref(at) }, part)));
  }
  if (file) links.push(h("li", {}, nameOf(file)));
  const last = links[links.length - 1].firstChild;
  if (last instanceof HTMLAnchorElement) last.setAttribute("aria-current", "page");
  return h("nav", { "aria-label": "Path", class: "crumbs path" }, h("ol", {}, links));
}

/** Download a file through getFile: its 302 to the signed URL is followed, the body saved
 * under the file's name. The signed URL (good for files_url_seconds of the emulator clock). */
export async function download(path) {
  const response = await v1Raw("GET", apiPath(path));
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: nameOf(path), hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return { url: response.url, bytes: blob.size };
}

async function metadata(path) {
  const response = await v1Raw("HEAD", apiPath(path));
  const modified = Date.parse(response.headers.get("Last-Modified") || "");
  return {
    size: Number(response.headers.get("Content-Length")),
    type: response.headers.get("Content-Type"),
    etag: response.headers.get("ETag"),
    modified: Number.isNaN(modified) ? null : modified,
  };
}

export async function render(view, ctx) {
  const { dir, file } = located(ctx.args);
  const out = h("p", { class: "message", id: "files-message", role: "status" });
  const listBox = h("div", { id: "file-list" });
  const keys = [null];
  let at = 0;
  let items = [];
  let next = null;
  const perPage = h("select", { id: "per-page" }, PAGE_SIZES.map((n) => h("option", { value: n, selected: n === DEFAULT_SIZE }, String(n))));
  const previous = h("button", { type: "button", id: "previous-page" }, "Previous page");
  const following = h("button", { type: "button", id: "next-page" }, "Next page");
  const pageNote = h("span", { class: "muted", id: "page-note" });

  const deleteFile = async (path) => {
    if (!(await confirmAction(`Delete the file ${path}? This cannot be undone.`, "Delete"))) return;
    await v1Raw("DELETE", apiPath(path));
    if (path === file) { location.hash = pageHref(dir); return; }
    await load();
    say(out, `Deleted ${path}.`);
  };
  const deleteDirectory = async (path) => {
    if (!(await confirmAction(`Delete the directory ${path}? Only an empty directory can be deleted.`, "Delete"))) return;
    await v1Raw("DELETE", apiPath(path));
    if (path === dir) { location.hash = pageHref(parentOf(dir)); return; }
    await load();
    say(out, `Deleted the directory ${path}.`);
  };
  const fetched = async (path) => {
    const got = await download(path);
    out.replaceChildren(`Downloaded ${path} (${size(got.bytes)}) through its `,
      h("a", { href: got.url, download: nameOf(path) }, "signed download URL"), ".");
    out.className = "message ok";
    out.setAttribute("role", "status");
  };
  const actionButton = (label, name, action) => {
    const button = h("button", { type: "button", class: label === "Delete" ? "small danger" : "small", "aria-label": `${label} ${name}` }, label);
    button.addEventListener("click", () => busy(button, out, action));
    return button;
  };

  const draw = () => {
    const columns = [
      { label: "Name", cell: (e) => (e.isDirectory
        ? h("a", { href: pageHref(e.filePath), class: "directory" }, e.filename)
        : h("a", { href: pageHref(e.filePath), class: "file", "aria-current": e.filePath === file ? "true" : null }, e.filename)) },
      { label: "Size", class: "num", cell: (e) => (e.isDirectory ? "directory" : size(e.contentLength)) },
      { label: "Content type", cell: (e) => (e.isDirectory ? "" : h("code", {}, e.contentType)) },
      { label: "Last modified", cell: (e) => timeEl(e.lastModifiedTime) },
      { label: "Actions", cell: (e) => h("div", { class: "row-actions" }, e.isDirectory
        ? actionButton("Delete", e.filename, () => deleteDirectory(e.filePath))
        : [actionButton("Download", e.filename, () => fetched(e.filePath)),
          actionButton("Delete", e.filename, () => deleteFile(e.filePath))]) },
    ];
    const empty = dir === "/" ? "No files yet: upload one below, or from a device on harvest-files.soracom.io."
      : "This directory is empty.";
    listBox.replaceChildren(table(`${dir} (page ${at + 1}, ${items.length} ${items.length === 1 ? "entry" : "entries"})`, columns, items, empty));
    pager();
  };
  const pager = () => {
    previous.disabled = at === 0;
    following.disabled = !next;
    pageNote.textContent = `Page ${at + 1}${next ? "" : " (the last)"}`;
  };
  const load = async () => {
    const { data, headers } = await v1("GET", apiPath(dir), {
      params: { limit: perPage.value, last_evaluated_key: keys[at] },
    });
    items = data;
    next = headers.get("x-soracom-next-key");
    keys[at + 1] = next;
    draw();
  };
  // busy() enables its button again when done: the pager then says which way is open
  const turn = (button, step) => busy(button, out, async () => {
    at += step;
    try { await load(); } catch (error) { at -= step; throw error; }
  }).then(pager);
  previous.addEventListener("click", () => turn(previous, -1));
  following.addEventListener("click", () => turn(following, 1));
  perPage.addEventListener("change", () => { keys.length = 1; at = 0; busy(perPage, out, load); });

  const heading = [h("h1", {}, "Files"), crumbs(dir, file)];
  try {
    await load();
  } catch (error) {
    if (error.status !== 404) throw error;
    view.replaceChildren(...heading, h("p", { class: "message error", role: "alert" }, error.message),
      h("p", {}, h("a", { href: pageHref("/") }, "Back to the root directory")));
    return;
  }

  // upload: a file from this computer, to a name under this directory, with its content type
  const chosen = h("input", { type: "file", id: "upload-file", required: true });
  const name = h("input", { id: "upload-name", autocomplete: "off", spellcheck: "false", required: true, "aria-describedby": "upload-hint" });
  const type = h("input", { id: "upload-type", autocomplete: "off", spellcheck: "false", placeholder: "application/octet-stream" });
  chosen.addEventListener("change", () => {
    const picked = chosen.files[0];
    if (!picked) return;
    name.value = picked.name;
    type.value = picked.type || "application/octet-stream";
  });
  const upload = h("form", { id: "upload", class: "upload-form", onsubmit: (e) => {
    e.preventDefault();
    busy(upload.querySelector("button"), out, async () => {
      const picked = chosen.files[0];
      const target = uploadPath(dir, name.value);
      if (!picked || target.endsWith("/")) throw new Error("Choose a file and give it a name.");
      const known = items.find((i) => i.filePath === target);
      if (known && !(await confirmAction(`Replace ${target}? Its current content is lost.`, "Replace"))) return;
      const response = await v1Raw("PUT", apiPath(target), {
        body: picked, headers: { "Content-Type": type.value.trim() || "application/octet-stream" },
      });
      upload.reset();
      await load();
      say(out, `${response.status === 201 ? "Uploaded" : "Replaced"} ${target} (${size(picked.size)}).`);
    });
  } },
  h("div", { class: "field" }, h("label", { for: "upload-file" }, "File"), chosen),
  h("div", { class: "field" }, h("label", { for: "upload-name" }, `Name under ${dir}`), name),
  h("div", { class: "field" }, h("label", { for: "upload-type" }, "Content type"), type),
  h("button", { type: "submit" }, "Upload"));

  const refresh = h("button", { type: "button", id: "refresh" }, "Refresh");
  refresh.addEventListener("click", () => busy(refresh, out, load));
  const here = [];
  if (dir !== "/") {
    here.push(h("a", { href: pageHref(parentOf(dir)), id: "up" }, "Up one level"));
    const remove = h("button", { type: "button", class: "danger", id: "delete-here" }, "Delete this directory");
    remove.addEventListener("click", () => busy(remove, out, () => deleteDirectory(dir)));
    here.push(remove);
  }

  let details = null;
  if (file) {
    const shown = h("div", { id: "file-details" });
    details = section(`File ${file}`, shown);
    try {
      const meta = await metadata(file);
      const row = (label, value) => [h("dt", {}, label), h("dd", {}, value)];
      const get = h("button", { type: "button" }, "Download");
      get.addEventListener("click", () => busy(get, out, () => fetched(file)));
      const remove = h("button", { type: "button", class: "danger" }, "Delete");
      remove.addEventListener("click", () => busy(remove, out, () => deleteFile(file)));
      shown.replaceChildren(
        h("dl", { class: "meta" },
          row("Size", size(meta.size)), row("Content type", h("code", {}, meta.type)),
          row("Last modified", meta.modified === null ? "unknown" : timeEl(meta.modified)),
          row("ETag", h("code", {}, meta.etag))),
        h("div", { class: "controls" }, get, remove, h("a", { href: pageHref(dir) }, "Close")),
      );
    } catch (error) {
      shown.replaceChildren(h("p", { class: "message error", role: "alert" }, error.message));
    }
  }

  view.replaceChildren(
    ...heading,
    ...(details ? [details] : []),
    section("Directory", h("div", { class: "controls" }, ...here, refresh,
      h("label", { for: "per-page" }, "Per page"), perPage), out, listBox,
      h("div", { class: "controls pager" }, previous, pageNote, following)),
    section("Upload", h("p", { class: "muted", id: "upload-hint" },
      "A name with / puts the file in a directory under this one, made by the upload. An existing name is replaced (you are asked first)."), upload),
  );
}
