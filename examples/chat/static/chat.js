// The triosio chat page: the official socket.io browser client, nothing else.
// ?transports=websocket (or polling, or polling,websocket) picks the transports.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const transports = (params.get("transports") || "polling,websocket").split(",");
const socket = io({ transports });

let me = null;      // {name, room} once joined
let typingTimer = null;
const typingNow = new Map(); // name -> timeout

// ------------------------------------------------------------ connection state

function setStatus(state, text) {
  const el = $("status");
  el.className = "status " + state;
  el.dataset.state = state;
  $("status-text").textContent = text;
}

socket.on("connect", () => {
  setStatus("connected", `connected (${socket.io.engine.transport.name})`);
  socket.io.engine.on("upgrade", (t) => setStatus("connected", `connected (${t.name})`));
  if (me) {
    join(me.name, me.room); // back after a reconnection: join again
  } else {
    showJoin();
  }
});
socket.on("disconnect", (reason) => {
  setStatus(socket.active ? "reconnecting" : "disconnected",
            socket.active ? "reconnecting…" : `disconnected (${reason})`);
  enableComposer(false);
});
socket.io.on("reconnect_attempt", (n) => setStatus("reconnecting", `reconnecting… (attempt ${n})`));
socket.on("connect_error", () => setStatus("reconnecting", "reconnecting…"));

// ------------------------------------------------------------ joining

function showJoin(error) {
  $("join-error").textContent = error || "";
  const dialog = $("join-dialog");
  if (!dialog.open) dialog.showModal();
  $("join-name").focus();
}

async function join(name, room) {
  const reply = await socket.timeout(5000).emitWithAck("join", { name, room }).catch(
    () => ({ ok: false, error: "the server did not answer" }));
  if (!reply.ok) {
    showJoin(reply.error);
    return false;
  }
  me = { name, room };
  $("join-dialog").close();
  $("me").textContent = name;
  $("room-title").textContent = "# " + room;
  $("messages").replaceChildren();
  reply.history.forEach(addMessage);
  notice(`you joined #${room}`);
  renderUsers(reply.users);
  markRoom();
  enableComposer(true);
  $("text").focus();
  return true;
}

$("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  join($("join-name").value.trim(), $("join-room").value.trim());
});

$("new-room").addEventListener("submit", (e) => {
  e.preventDefault();
  const room = $("new-room-name").value.trim();
  if (room && me) {
    $("new-room-name").value = "";
    join(me.name, room);
  }
});

// ------------------------------------------------------------ rendering

function addMessage(m) {
  const li = document.createElement("li");
  if (me && m.name === me.name) li.classList.add("mine");
  const meta = document.createElement("div");
  meta.className = "meta";
  const who = document.createElement("b");
  who.textContent = m.name;
  meta.append(who, " · " + new Date(m.time).toLocaleTimeString());
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = m.text;
  li.append(meta, text);
  li.dataset.id = m.id;
  appendItem(li);
}

function notice(text, cls = "notice") {
  const li = document.createElement("li");
  li.className = cls;
  li.textContent = text;
  appendItem(li);
}

function appendItem(li) {
  const list = $("messages");
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

function renderUsers(users) {
  $("users").replaceChildren(...users.map((name) => {
    const li = document.createElement("li");
    li.textContent = name + (me && name === me.name ? " (you)" : "");
    return li;
  }));
}

let knownRooms = [];
function renderRooms(rooms) {
  knownRooms = rooms;
  $("rooms").replaceChildren(...rooms.map((room) => {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = "# " + room.name;
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = room.users;
    li.append(name, count);
    li.dataset.room = room.name;
    if (me && room.name === me.room) li.classList.add("current");
    li.addEventListener("click", () => me && room.name !== me.room && join(me.name, room.name));
    return li;
  }));
}
function markRoom() { renderRooms(knownRooms); }

function renderTyping() {
  const names = [...typingNow.keys()];
  $("typing").textContent = names.length === 0 ? "" :
    names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
}

function enableComposer(on) {
  $("text").disabled = !on;
  $("send").disabled = !on;
}

// ------------------------------------------------------------ server events

socket.on("message", addMessage);
socket.on("users", renderUsers);
socket.on("rooms", renderRooms);
socket.on("private", (m) => {
  const li = document.createElement("li");
  li.className = "private";
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = `private from ${m.from}`;
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = m.text;
  li.append(meta, text);
  appendItem(li);
});
socket.on("typing", ({ name, typing }) => {
  clearTimeout(typingNow.get(name));
  if (typing) {
    typingNow.set(name, setTimeout(() => { typingNow.delete(name); renderTyping(); }, 5000));
  } else {
    typingNow.delete(name);
  }
  renderTyping();
});

// ------------------------------------------------------------ sending

$("composer").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  stopTyping();
  const direct = text.match(/^\/to\s+(\S+)\s+(.+)$/);
  if (direct) {
    const reply = await socket.emitWithAck("private", { to: direct[1], text: direct[2] });
    notice(reply.ok ? `private to ${direct[1]}: ${direct[2]}` : reply.error);
    return;
  }
  const reply = await socket.emitWithAck("message", text);
  if (!reply.ok) notice(reply.error);
});

$("text").addEventListener("input", () => {
  if (!typingTimer) socket.emit("typing", true);
  clearTimeout(typingTimer);
  typingTimer = setTimeout(stopTyping, 1500);
});

function stopTyping() {
  if (typingTimer) {
    clearTimeout(typingTimer);
    typingTimer = null;
    socket.emit("typing", false);
  }
}
