"""An MCP agent for the gateway's tests: the real `mcp` client package.

    agent.py stdio STEPS_JSON CMD_JSON       # spawns CMD (the gateway with --stdio)
    agent.py http STEPS_JSON URL TOKEN       # streamable HTTP with a bearer token

STEPS_JSON is a file with a list of steps:
    {"list": true}                                   -> {"tools": [names]}
    {"list_prompts": true}                           -> {"prompts": [names], "resources": [uris]}
    {"call": NAME, "args": {...}, "progress": bool}  -> {"is_error", "text", "meta", "progress"} or {"error"}
    {"touch": PATH}                                  creates PATH (tells the test where we are)
    {"wait_file": PATH, "timeout": S}                waits until the test creates PATH
    {"wait_list_changed": S}                         -> {"list_changed": N} once N >= 1 (or S passed)
Prints one JSON object: {"results": [...]} (one entry per list/call step).
"""

import asyncio
import json
import os
import sys
import time

import mcp.types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client


LIST_CHANGED = []


async def on_message(message):
    if isinstance(message, types.ServerNotification) and isinstance(
        message.root, types.ToolListChangedNotification
    ):
        LIST_CHANGED.append(time.time())


async def run_steps(session, steps):
    await session.initialize()
    results = []
    for step in steps:
        if "list" in step:
            tools = await session.list_tools()
            results.append({"tools": [t.name for t in tools.tools]})
        elif "list_prompts" in step:
            prompts = await session.list_prompts()
            resources = await session.list_resources()
            results.append({
                "prompts": [p.name for p in prompts.prompts],
                "resources": [str(r.uri) for r in resources.resources],
            })
        elif "call" in step:
            seen = []

            async def on_progress(progress, total, message):
                seen.append(message)

            try:
                kwargs = {}
                if step.get("progress"):
                    kwargs["progress_callback"] = on_progress
                r = await session.call_tool(step["call"], step.get("args", {}), **kwargs)
                text = "\n".join(c.text for c in r.content if getattr(c, "type", "") == "text")
                results.append({
                    "is_error": bool(r.isError),
                    "text": text,
                    "meta": r.meta,
                    "progress": seen,
                })
            except Exception as e:  # a JSON-RPC error: the call failed, the session goes on
                results.append({"error": repr(e), "progress": seen})
        elif "touch" in step:
            open(step["touch"], "w").close()
        elif "wait_list_changed" in step:
            deadline = time.time() + step["wait_list_changed"]
            while not LIST_CHANGED and time.time() < deadline:
                await asyncio.sleep(0.05)
            results.append({"list_changed": len(LIST_CHANGED)})
        elif "wait_file" in step:
            deadline = time.time() + step.get("timeout", 60)
            while not os.path.exists(step["wait_file"]):
                if time.time() > deadline:
                    raise SystemExit(f"timed out waiting for {step['wait_file']}")
                await asyncio.sleep(0.05)
    return results


async def main():
    mode, steps_file = sys.argv[1], sys.argv[2]
    steps = json.load(open(steps_file))
    if mode == "stdio":
        cmd = json.loads(sys.argv[3])
        params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=dict(os.environ))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write, message_handler=on_message) as session:
                results = await run_steps(session, steps)
    else:
        url, token = sys.argv[3], sys.argv[4]
        headers = {"Authorization": f"Bearer {token}"}
        async with streamablehttp_client(url, headers=headers) as (read, write, _):
            async with ClientSession(read, write, message_handler=on_message) as session:
                results = await run_steps(session, steps)
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    asyncio.run(main())
