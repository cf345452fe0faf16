import { request } from 'undici';
for (let i = 0; i < 3; i++) { const r = await request('http://127.0.0.1:18777/x', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } }); await r.body.text(); }
