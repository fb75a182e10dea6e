// Thusa phone simulator: three phones that talk to the server's /simulator/api, which signs each message the way
// its provider would and posts it to the real webhook. Replies are read back from the message log by polling.
"use strict";

(function () {
  const T = JSON.parse(document.getElementById("sim-texts").textContent);
  let clinics = JSON.parse(document.getElementById("sim-clinics").textContent);
  const body = document.body;
  const language = body.dataset.language;
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 1500;
  const QUICK_MS = 250;
  const QUICK_FOR_MS = 4000;
  let quickUntil = 0; // until when the page polls every QUICK_MS
  let timer = null;
  const ussd = { sessionId: null, history: "" };

  function api(path, options) {
    const init = Object.assign({ method: "GET", headers: {} }, options || {});
    init.headers["X-Simulator"] = "1";
    if (init.json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(init.json);
    }
    const url = "/simulator/api/" + path + (path.includes("?") ? "&" : "?") + "lang=" + language;
    return fetch(url, init).then((response) =>
      response.json().catch(() => ({})).then((data) => {
        if (!response.ok) {
          const message = (data.error && data.error.message) || String(response.status);
          throw new Error(message);
        }
        return data;
      })
    );
  }

  function notice(text, failed) {
    const box = $("notice");
    box.textContent = text;
    box.classList.toggle("failed", !!failed);
  }

  function failed(error) {
    notice(T.sim_failed.replace("{error}", error.message), true);
  }

  // --- pickers --------------------------------------------------------------------------------------------------

  function fillPatients() {
    const clinic = clinics.find((c) => c.id === $("clinic").value) || clinics[0];
    const select = $("patient");
    const chosen = select.value;
    select.textContent = "";
    (clinic ? clinic.patients : []).forEach((p) => {
      const option = document.createElement("option");
      option.value = p.phone;
      option.textContent = p.name + " " + p.phone + (p.visit ? " - " + p.visit : "");
      select.appendChild(option);
    });
    if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
    $("send-reminders").disabled = select.options.length === 0;
    patientChanged();
  }

  function patientChanged() {
    $("sms-number").textContent = $("patient").value || "";
    renderThread($("sms-thread"), [], false);
    lastSeen.sms = "";
    pollSoon();
  }

  // --- threads --------------------------------------------------------------------------------------------------

  const lastSeen = { sms: "", ussd: "", chat: "" };

  function bubble(m) {
    const item = document.createElement("li");
    item.className = "bubble " + (m.direction === "in" ? "mine" : "theirs");
    item.dataset.id = m.id;
    item.dataset.direction = m.direction;
    if (m.media) {
      const tag = document.createElement("span");
      tag.className = "media";
      tag.textContent = "[" + T.sim_photo + "]";
      item.appendChild(tag);
    }
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = m.text;
    item.appendChild(text);
    return item;
  }

  function buttonsFor(m) {
    const row = document.createElement("div");
    row.className = "buttons";
    m.buttons.forEach((b) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "quick";
      button.textContent = b.title;
      button.addEventListener("click", () => sendChat({ button: { id: b.id, title: b.title } }));
      row.appendChild(button);
    });
    return row;
  }

  // Appends only what is new, so a screen reader announces each new message once (the lists are aria-live).
  function renderThread(list, messages, withButtons) {
    const shown = [...list.querySelectorAll("li.bubble")].map((li) => li.dataset.id);
    const ids = messages.map((m) => m.id);
    const continues = shown.length <= ids.length && shown.every((id, i) => ids[i] === id);
    if (!continues || !messages.length) list.textContent = "";
    if (!messages.length) {
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = T.sim_no_messages;
      list.appendChild(empty);
      return;
    }
    list.querySelectorAll("li.empty").forEach((li) => li.remove());
    const fresh = messages.slice(continues ? shown.length : 0);
    if (!fresh.length) return;
    list.querySelectorAll(".buttons").forEach((row) => row.remove()); // only the newest question can be answered
    fresh.forEach((m) => list.appendChild(bubble(m)));
    const newest = messages[messages.length - 1];
    if (withButtons && newest.direction === "out" && newest.buttons.length) {
      list.lastElementChild.appendChild(buttonsFor(newest));
    }
    list.scrollTop = list.scrollHeight;
  }

  function chatAddress() {
    return $("chat-app").value === "telegram" ? body.dataset.telegramChat : body.dataset.pharmacist;
  }

  let polling = false;
  function poll() {
    if (polling || document.hidden) return;
    const wanted = { sms: $("patient").value, ussd: $("ussd-number").value, chat: chatAddress() };
    const query = Object.values(wanted).filter(Boolean).map((a) => "address=" + encodeURIComponent(a)).join("&");
    if (!query) return;
    polling = true;
    api("messages?" + query)
      .then((data) => {
        [["sms", "sms-thread", false], ["ussd", "ussd-thread", false], ["chat", "chat-thread", true]].forEach(
          ([key, listId, withButtons]) => {
            const messages = data[wanted[key]] || [];
            const stamp = wanted[key] + ":" + messages.map((m) => m.id).join(",");
            if (stamp !== lastSeen[key]) {
              lastSeen[key] = stamp;
              renderThread($(listId), messages, withButtons);
            }
          }
        );
      })
      .catch(() => {})
      .finally(() => { polling = false; });
  }

  // After the person does something, its answer is looked for every QUICK_MS for QUICK_FOR_MS (it crosses the
  // webhook, the worker and the console sender, usually in well under a second), then every POLL_MS again.
  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => { poll(); schedule(); }, Date.now() < quickUntil ? QUICK_MS : POLL_MS);
  }
  function pollSoon() {
    quickUntil = Date.now() + QUICK_FOR_MS;
    poll();
    schedule();
  }

  // --- SMS phone ------------------------------------------------------------------------------------------------

  $("sms-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("sms-text");
    const text = input.value.trim();
    if (!text) return;
    api("sms", { method: "POST", json: { phone: $("patient").value, text: text } })
      .then(() => { input.value = ""; pollSoon(); })
      .catch(failed);
  });

  // --- USSD phone -----------------------------------------------------------------------------------------------

  function showScreen(text, open) {
    $("ussd-screen").textContent = text;
    $("ussd-input").disabled = !open;
    $("ussd-answer").disabled = !open;
    $("ussd-hangup").disabled = !open;
    $("ussd-dial").disabled = open;
    if (open) $("ussd-input").focus();
  }

  function hop(payload) {
    return api("ussd", { method: "POST", json: payload }).then((data) => {
      if (data.end) {
        ussd.sessionId = null;
        ussd.history = "";
        showScreen(data.screen + "\n\n(" + T.sim_ussd_ended + ")", false);
      } else {
        ussd.sessionId = data.session_id;
        ussd.history = data.history;
        showScreen(data.screen, true);
      }
      pollSoon();
    });
  }

  $("ussd-dial").addEventListener("click", () => {
    hop({ phone: $("ussd-number").value }).catch(failed);
  });

  $("ussd-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!ussd.sessionId) return;
    const input = $("ussd-input");
    const typed = input.value;
    input.value = "";
    // Africa's Talking sends everything typed in the session, joined with "*".
    const history = ussd.history === "" ? typed : ussd.history + "*" + typed;
    hop({ phone: $("ussd-number").value, session_id: ussd.sessionId, history: history }).catch(failed);
  });

  $("ussd-hangup").addEventListener("click", () => {
    ussd.sessionId = null;
    ussd.history = "";
    showScreen(T.sim_ussd_ended, false);
  });

  $("ussd-number").addEventListener("change", () => {
    ussd.sessionId = null;
    ussd.history = "";
    showScreen(T.sim_ussd_idle, false);
    lastSeen.ussd = "";
    pollSoon();
  });

  // --- chat phone -----------------------------------------------------------------------------------------------

  function sendChat(payload) {
    return api("chat", { method: "POST", json: Object.assign({ app: $("chat-app").value }, payload) })
      .then(() => pollSoon())
      .catch(failed);
  }

  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("chat-text");
    const text = input.value.trim();
    if (!text) return;
    sendChat({ text: text }).then(() => { input.value = ""; });
  });

  $("photo-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const file = $("chat-photo").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("app", $("chat-app").value);
    form.append("photo", file);
    api("chat/photo", { method: "POST", body: form })
      .then(() => { $("chat-photo").value = ""; pollSoon(); })
      .catch(failed);
  });

  $("chat-contact").addEventListener("click", () => sendChat({ contact: true }));

  $("chat-app").addEventListener("change", () => {
    $("chat-contact").hidden = $("chat-app").value !== "telegram";
    lastSeen.chat = "";
    pollSoon();
  });

  // --- controls -------------------------------------------------------------------------------------------------

  $("clinic").addEventListener("change", fillPatients);
  $("patient").addEventListener("change", patientChanged);

  $("send-reminders").addEventListener("click", () => {
    api("reminders", { method: "POST", json: { clinic_id: $("clinic").value, phone: $("patient").value } })
      .then((data) => { notice(data.notice, data.result === "none"); pollSoon(); })
      .catch(failed);
  });

  $("answer-review").addEventListener("click", () => {
    api("review-answer", { method: "POST", json: {} })
      .then((data) => { notice(data.notice, data.result === "none"); pollSoon(); })
      .catch(failed);
  });

  $("reset").addEventListener("click", () => {
    api("reset", { method: "POST", json: {} })
      .then((data) => {
        clinics = data.clinics;
        ussd.sessionId = null;
        ussd.history = "";
        showScreen(T.sim_ussd_idle, false);
        fillPatients();
        notice(data.notice, false);
      })
      .catch(failed);
  });

  fillPatients();
  schedule();
})();
