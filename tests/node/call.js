// One RPC call with @alicloud/pop-core (signature version 1.0), for tests/test_sts_node.py.
// Input (argv[2], JSON): endpoint, accessKeyId, accessKeySecret, securityToken (optional), apiVersion,
// action, params, method. Output (stdout, JSON): {"ok": true, "body": ...} or {"ok": false, "code": ...}.
'use strict';

const RPCClient = require('@alicloud/pop-core').RPCClient;

async function main() {
  const input = JSON.parse(process.argv[2]);
  const config = {
    endpoint: input.endpoint,
    accessKeyId: input.accessKeyId,
    accessKeySecret: input.accessKeySecret,
    apiVersion: input.apiVersion,
  };
  if (input.securityToken) {
    config.securityToken = input.securityToken;
  }
  const client = new RPCClient(config);
  try {
    const body = await client.request(input.action, input.params || {}, {method: input.method || 'POST', timeout: 10000});
    process.stdout.write(JSON.stringify({ok: true, body: body}));
  } catch (err) {
    process.stdout.write(JSON.stringify({ok: false, code: err.code || null, message: String(err.message)}));
  }
}

main();
