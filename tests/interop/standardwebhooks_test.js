// Each side verifies what the other signed: whisperer's webhook-signature checked by the npm
// package standardwebhooks, and its signatures checked by whisperer::verify_webhook.
'use strict';
const assert = require('node:assert');
const { execFileSync, spawnSync } = require('node:child_process');
const { Webhook } = require('standardwebhooks');

const tool = process.argv[2];
const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const other = 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD';
const body = '{"event":{"type":"package-created","uuid":"7d0b3f4e"},"data":{"id":61,"name":"caf\u00e9 \u2713"}}';
let checks = 0;

function whispererSigns(secrets, id, timestamp, payload) {
  return JSON.parse(execFileSync(tool, ['sign', ...secrets, '--', id, String(timestamp), payload]));
}

function whispererVerifies(secrets, headers, payload) {
  const run = spawnSync(tool, ['verify', ...secrets], { input: JSON.stringify({ headers, body: payload }) });
  assert.notStrictEqual(run.status, 2, run.stderr.toString());
  return { ok: run.status === 0, output: run.stdout.toString().trim() };
}

function check(name, condition, detail = '') {
  assert.ok(condition, `${name} ${detail}`);
  checks += 1;
  console.log(`ok ${checks} - ${name}`);
}

const now = Math.floor(Date.now() / 1000);

// whisperer signs, standardwebhooks verifies.
const signed = whispererSigns([secret], 'msg_interop_1', now, body);
check('standardwebhooks verifies a whisperer signature', (() => {
  new Webhook(secret).verify(body, signed);
  return true;
})());
const rotated = whispererSigns([other, secret], 'msg_interop_2', now, body);
for (const s of [secret, other]) {
  check(`standardwebhooks verifies a two-secret header with ${s.slice(0, 12)}...`, (() => {
    new Webhook(s).verify(body, rotated);
    return true;
  })());
}
check('standardwebhooks refuses a whisperer signature over another body',
      (() => { try { new Webhook(secret).verify(body + ' ', signed); return false; } catch { return true; } })());
check('standardwebhooks refuses a whisperer signature under another secret',
      (() => { try { new Webhook(other).verify(body, signed); return false; } catch { return true; } })());

// standardwebhooks signs, whisperer verifies.
const wh = new Webhook(secret);
const id = 'msg_interop_3';
const date = new Date(now * 1000);
const headers = { 'webhook-id': id, 'webhook-timestamp': String(now), 'webhook-signature': wh.sign(id, date, body) };
let r = whispererVerifies([secret], headers, body);
check('whisperer verifies a standardwebhooks signature', r.ok && r.output === 'verified (standard_webhooks)', r.output);
r = whispererVerifies([other, secret], headers, body);
check('whisperer verifies it with the secret second in a rotation', r.ok, r.output);
r = whispererVerifies([secret], headers, body.replace('61', '62'));
check('whisperer refuses it over another body', !r.ok && r.output.startsWith('bad_signature'), r.output);
r = whispererVerifies([other], headers, body);
check('whisperer refuses it under another secret', !r.ok && r.output.startsWith('bad_signature'), r.output);
const old = Math.floor(Date.now() / 1000) - 3600;
const stale = { 'webhook-id': id, 'webhook-timestamp': String(old), 'webhook-signature': wh.sign(id, new Date(old * 1000), body) };
r = whispererVerifies([secret], stale, body);
check('whisperer refuses a standardwebhooks signature an hour old', !r.ok && r.output.startsWith('stale'), r.output);

// Both libraries agree byte for byte on the signature.
check('both produce the same signature', wh.sign(id, date, body) === whispererSigns([secret], id, now, body)['webhook-signature']);
console.log(`1..${checks}`);
