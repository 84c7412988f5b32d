// Drives the rendered Agents Playground page in headless Chromium for the Python browser tests.
//
// One JSON request per stdin line ({"id", "op", "page", ...args}), one JSON answer per stdout line
// ({"id", "ok", "result"} or {"id", "ok": false, "error"}). One Chromium serves many pages: `open`
// makes a page in a context of its own and answers its id, which the page's later requests name;
// `closePage` closes it. The browser is Debian's chromium (CHROMIUM_PATH, default /usr/bin/chromium)
// driven by the pinned npm playwright-core: nothing downloads a browser build. Page errors and the
// card renderer's console errors are collected per page and returned with every answer about that
// page, so a test fails on the first one.
import { chromium } from 'playwright-core';
import readline from 'node:readline';

const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
// The machine has no outside network: these flags stop Chromium's own background connections, and
// the Playground's CDN fonts/animations fail to load (noise, not the product's errors).
const LAUNCH_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];
const NETWORK_NOISE = [/net::ERR_NAME_NOT_RESOLVED/, /net::ERR_INTERNET_DISCONNECTED/, /Failed to load worklet module/,
  /status of 404/, /cdn\.office\.net/, /net::ERR_CONNECTION_REFUSED/];

let browser = null;
// The open pages by id, each in its own browser context (its own cookies and storage, as a fresh
// browser has); `page` is the one the request being answered is about.
const pages = new Map();
let nextPageId = 1;
let page = null;

function noteProblem(problems, kind, text) {
  if (NETWORK_NOISE.some((pattern) => pattern.test(text))) return;
  problems.push(`${kind}: ${text}`);
}

// Every message in the open chat or channel, oldest first: its author, its text and whether it holds
// a card. A chat shows messages under a "Message header"; a channel shows posts as cards (role=group)
// whose first line names the author.
async function messages() {
  return page.evaluate(() => {
    const out = [];
    const headers = document.querySelectorAll('[aria-label="Message header"]');
    if (headers.length) {
      for (const header of headers) {
        let box = header.parentElement;
        // The message's box is the nearest ancestor that also holds its body.
        while (box && box.innerText.trim() === header.innerText.trim()) box = box.parentElement;
        const author = header.querySelector('[aria-label="Message author"]')?.innerText.trim() ?? '';
        const text = box ? box.innerText.replace(header.innerText, '').trim() : '';
        out.push({ author, text, card: Boolean(box && box.querySelector('.ac-adaptiveCard')) });
      }
      return out;
    }
    for (const post of document.querySelectorAll('.fui-Card[role="group"]')) {
      const author = [...post.querySelectorAll('span')].map((span) => span.innerText.trim()).find(Boolean) ?? '';
      out.push({ author, text: post.innerText.trim(), card: Boolean(post.querySelector('.ac-adaptiveCard')) });
    }
    return out;
  });
}

function cards() {
  return page.locator('.ac-adaptiveCard');
}

// The newest card that has a button with this exact name (buttons of older cards stay clickable, as
// in Teams, and a test may click them on purpose with `index`).
async function cardWith(buttonName, index) {
  const all = cards().filter({ has: page.getByRole('button', { name: buttonName, exact: true }) });
  const count = await all.count();
  if (count === 0) throw new Error(`no card has a button named ${JSON.stringify(buttonName)}`);
  return index === undefined || index === null ? all.nth(count - 1) : all.nth(index);
}

// The input a person finds by its visible label on the newest card that has it (a required field's
// label ends in " *"; an error shown under the field is not part of the label), or, for a box that
// has no label (a search box beside its button), by the hint written in it.
async function inputLabelled(label) {
  const found = await page.evaluate((wanted) => {
    const clean = (text) => text.replace(/\s*\*\s*$/, '').trim();
    const labelled = (card) => [...card.querySelectorAll('label[for]')].find((node) => clean(node.innerText) === wanted);
    const hinted = (card) => [...card.querySelectorAll('input[placeholder]')].find((node) => node.placeholder === wanted);
    const all = [...document.querySelectorAll('.ac-adaptiveCard')];
    const byLabel = all.filter(labelled).at(-1);
    if (byLabel) return labelled(byLabel).getAttribute('for');
    const byHint = all.filter(hinted).at(-1);
    return byHint ? hinted(byHint).id : null;
  }, label);
  if (!found) throw new Error(`no card has an input labelled ${JSON.stringify(label)}`);
  return page.locator(`[id="${found}"]`);
}

// The tick boxes or option buttons of an expanded choice set whose name contains `option` (one only).
async function choiceIn(input, option) {
  for (const role of ['radio', 'checkbox']) {
    let item = input.getByRole(role, { name: option, exact: true });
    if ((await item.count()) === 0) item = input.getByRole(role, { name: option });
    const count = await item.count();
    if (count > 1) throw new Error(`${count} choices match ${JSON.stringify(option)}`);
    if (count === 1) return item;
  }
  throw new Error(`no choice matches ${JSON.stringify(option)}`);
}

const ops = {
  // Start Chromium (once per driver); pages are opened and closed in it afterwards.
  async launch() {
    browser ??= await chromium.launch({ executablePath, headless: true, args: LAUNCH_ARGS });
    return null;
  },
  // A new page in a new context, showing `url`; returns its id (the `page` of later requests).
  async open({ url, width = 1280, height = 900 }) {
    browser ??= await chromium.launch({ executablePath, headless: true, args: LAUNCH_ARGS });
    const context = await browser.newContext({ viewport: { width, height } });
    const id = nextPageId;
    nextPageId += 1;
    page = await context.newPage();
    const problems = [];
    pages.set(id, { page, problems });
    page.setDefaultTimeout(10000);
    page.on('pageerror', (error) => noteProblem(problems, 'page error', error.message));
    page.on('console', (message) => { if (message.type() === 'error') noteProblem(problems, 'console error', message.text()); });
    try {
      await page.goto(url, { timeout: 60000 });
      await page.getByRole('textbox').first().waitFor({ timeout: 50000 });
    } catch (error) {
      pages.delete(id);
      await context.close();
      throw error;
    }
    return id;
  },
  // Close a page and its context (what it stored goes with it).
  async closePage() {
    if (page) await page.context().close();
    return null;
  },
  async openChat({ name }) {
    await page.getByRole('treeitem', { name }).first().click();
    return null;
  },
  async messages() { return messages(); },
  async send({ text }) {
    const box = page.getByRole('textbox').last();
    await box.fill(text);
    await box.press('Enter');
    return null;
  },
  // In a channel the bot reads only messages that @mention it: type "@" and the start of its name,
  // pick it from the mention list, then the rest of the message.
  // (A channel just opened may still be setting up its compose box: the mention list then does not
  // come, and the "@" is typed again.)
  async sendMentioning({ name, text }) {
    const pick = page.getByRole('menuitem', { name }).first();
    for (let attempt = 1; ; attempt += 1) {
      const box = page.getByRole('textbox').last();
      await box.fill('');
      await box.pressSequentially(`@${name.split(' ')[0]}`);
      try {
        await pick.waitFor({ timeout: 3000 });
      } catch (error) {
        if (attempt === 5) throw error;
        continue;
      }
      await pick.click();
      // Typed where the caret is, after the mention (focusing the box again would move it).
      await page.keyboard.type(` ${text}`);
      await page.keyboard.press('Enter');
      return null;
    }
  },
  // `near`: the button inside the innermost part of the card that also shows this text (e.g. the
  // "Choose" of one product among several).
  async click({ name, index, near }) {
    const card = await cardWith(name, index);
    const button = page.getByRole('button', { name, exact: true });
    let scope = card;
    if (near) {
      scope = card.locator('.ac-container, .ac-columnSet, .ac-column').filter({ hasText: near }).filter({ has: button }).last();
      if ((await scope.count()) === 0) throw new Error(`no ${JSON.stringify(name)} button near ${JSON.stringify(near)}`);
    }
    await scope.getByRole('button', { name, exact: true }).last().click();
    return null;
  },
  // A row of a card that shows or hides part of it when tapped (a selectAction): the innermost
  // tappable part of the newest card that shows this text.
  async tap({ text }) {
    const rows = page.locator('.ac-adaptiveCard .ac-selectable[role="button"]').filter({ hasText: text });
    const count = await rows.count();
    if (count === 0) throw new Error(`no tappable row shows ${JSON.stringify(text)}`);
    await rows.nth(count - 1).click();
    return null;
  },
  // An Action.OpenUrl (rendered as a link-role button): click it as a person does and save what the
  // browser downloads from the page it opens. Returns the address and the file's suggested name.
  async download({ name, path }) {
    const all = cards().filter({ has: page.getByRole('link', { name, exact: true }) });
    const count = await all.count();
    if (count === 0) throw new Error(`no card has a link named ${JSON.stringify(name)}`);
    const link = all.nth(count - 1).getByRole('link', { name, exact: true }).last();
    const url = await link.getAttribute('title');
    // The link opens a page that turns into the download (and closes): listen on it from its start.
    let timer;
    const seen = [];
    const downloaded = new Promise((resolve, reject) => {
      page.once('download', resolve);
      page.context().once('page', (opened) => {
        seen.push(`a page opened (${opened.url()})`);
        opened.once('download', resolve);
      });
      timer = setTimeout(() => reject(new Error(`nothing was downloaded from ${url}: ${seen.join(', ') || 'no page opened'}`)), 15000);
    });
    await link.click();
    const download = await downloaded.finally(() => clearTimeout(timer));
    await download.saveAs(path);
    const failure = await download.failure();
    if (failure) throw new Error(`the download from ${url} failed: ${failure}`);
    return { url, name: download.suggestedFilename() };
  },
  async fill({ label, value }) {
    await (await inputLabelled(label)).fill(String(value));
    return null;
  },
  async select({ label, option }) {
    const input = await inputLabelled(label);
    const tag = await input.evaluate((element) => element.tagName.toLowerCase());
    const role = await input.getAttribute('role');
    if (tag === 'select') await input.selectOption({ label: option });
    else if (role === 'combobox') {
      // A compact choice set: the Fluent dropdown opens a list box of options.
      await input.click();
      let item = page.getByRole('option', { name: option, exact: true });
      if ((await item.count()) === 0) item = page.getByRole('option', { name: option });
      const count = await item.count();
      if (count !== 1) throw new Error(`${count} options of ${JSON.stringify(label)} match ${JSON.stringify(option)}`);
      await item.click();
    } else {
      // An expanded choice set: an option button, or a tick box of a multi-select (ticked; the
      // others keep their state). Found by its whole title, or by a part of it that is unambiguous.
      try {
        await (await choiceIn(input, option)).check();
      } catch (error) {
        throw new Error(`${JSON.stringify(label)}: ${error.message}`);
      }
    }
    return null;
  },
  // Untick one tick box of a multi-select.
  async untick({ label, option }) {
    await (await choiceIn(await inputLabelled(label), option)).uncheck();
    return null;
  },
  // The titles of an expanded choice set's options, and which are ticked or chosen.
  async choices({ label }) {
    const input = await inputLabelled(label);
    return input.locator('input[type="checkbox"], input[type="radio"]').evaluateAll((nodes) => nodes.map((node) => ({
      title: node.getAttribute('aria-label') || '', checked: node.checked,
    })));
  },
  async check({ label, checked = true }) {
    // A toggle's title is its accessible name (Input.Toggle renders no <label for>).
    const all = cards().filter({ has: page.getByRole('checkbox', { name: label, exact: true }) });
    const count = await all.count();
    if (count === 0) throw new Error(`no card has a checkbox named ${JSON.stringify(label)}`);
    await all.nth(count - 1).getByRole('checkbox', { name: label, exact: true }).setChecked(checked);
    return null;
  },
  async cardText({ index = -1 }) {
    const count = await cards().count();
    if (count === 0) return '';
    return cards().nth(index < 0 ? count + index : index).innerText();
  },
  // Text on the card the renderer cut off: an element whose content is wider than its box while it
  // hides the overflow (an ellipsis or a clipped label), with the text it holds.
  async clipped({ index = -1 }) {
    const count = await cards().count();
    if (count === 0) return [];
    const card = cards().nth(index < 0 ? count + index : index);
    return card.locator('*').evaluateAll((nodes) => nodes.filter((node) => {
      if (!node.innerText || !node.innerText.trim() || node.children.length > 0) return false;
      const style = getComputedStyle(node);
      const hides = ['hidden', 'clip'].includes(style.overflowX) || style.textOverflow === 'ellipsis';
      return hides && node.scrollWidth > node.clientWidth + 1;
    }).map((node) => node.innerText.trim()));
  },
  async buttons({ index = -1 }) {
    const count = await cards().count();
    if (count === 0) return [];
    const card = cards().nth(index < 0 ? count + index : index);
    return card.getByRole('button').evaluateAll((nodes) => nodes.map((node) => node.getAttribute('aria-label') || node.innerText.trim()));
  },
  async inputs({ index = -1 }) {
    const count = await cards().count();
    if (count === 0) return [];
    const card = cards().nth(index < 0 ? count + index : index);
    return card.locator('input, select, textarea').evaluateAll((nodes) => nodes.map((node) => ({
      tag: node.tagName.toLowerCase(), type: node.type, label: node.getAttribute('aria-label'), id: node.id,
      value: node.value,
    })));
  },
  // The compose box's message extension, as a person uses it: the extension button, "Search
  // Command", a search term typed in its box. The Playground shows no app list (it reads no manifest):
  // the bot's one search command answers whatever is typed.
  async extensionSearch({ term }) {
    if ((await page.getByPlaceholder('Enter a search term').count()) === 0) {
      await page.getByRole('button', { name: 'Trigger Message Extension App' }).click();
      await page.getByRole('menuitem', { name: 'Search Command' }).click();
    }
    await page.getByPlaceholder('Enter a search term').fill(term);
    return null;
  },
  // What the extension's panel shows under the search box: its results' titles, or its message.
  async extensionPanel() {
    const box = page.getByPlaceholder('Enter a search term');
    if ((await box.count()) === 0) return '';
    return box.evaluate((input) => {
      let panel = input;
      while (panel && !/Search-Based Message Extension/.test(panel.innerText || '')) panel = panel.parentElement;
      return panel ? panel.innerText : '';
    });
  },
  // Put the result with this title into the compose box, and send it.
  async extensionShare({ title }) {
    await page.getByRole('heading', { name: title, exact: true }).click();
    await page.getByRole('button', { name: 'Send Message' }).click();
    return null;
  },
  async screenshot({ path }) {
    await page.screenshot({ path, fullPage: false });
    return path;
  },
  async html() { return page.content(); },
  async close() {
    if (browser) await browser.close();
    browser = null;
    return null;
  },
};

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const request = JSON.parse(line);
  const open = request.page === undefined || request.page === null ? null : pages.get(request.page);
  page = open ? open.page : null;
  let answer;
  try {
    if (request.page !== undefined && request.page !== null && !open) throw new Error(`no page ${request.page}`);
    const result = await ops[request.op](request);
    answer = { id: request.id, ok: true, result };
  } catch (error) {
    answer = { id: request.id, ok: false, error: String(error && error.message ? error.message : error) };
  }
  // The problems of the page the request was about (a page just opened: its own).
  const answered = open ?? (request.op === 'open' && answer.ok ? pages.get(answer.result) : null);
  answer.problems = answered ? answered.problems.splice(0) : [];
  if (request.op === 'closePage' && open) pages.delete(request.page);
  process.stdout.write(`${JSON.stringify(answer)}\n`);
  if (request.op === 'close') break;
}
if (browser) await browser.close();
