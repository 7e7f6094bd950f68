"""Calls one tool through the gateway with the Python `mcp` client (pip install mcp==1.30.0).

    AGENT_TOKEN=… python3 call.py TOOL 'JSON_ARGUMENTS' [URL]
    python3 call.py --list
"""
import asyncio
import json
import os
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client


async def main():
    url = sys.argv[3] if len(sys.argv) > 3 else "http://127.0.0.1:8766/mcp"
    headers = {"Authorization": f"Bearer {os.environ['AGENT_TOKEN']}"}
    async with streamablehttp_client(url, headers=headers) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            if sys.argv[1] == "--list":
                for t in (await session.list_tools()).tools:
                    print(t.name)
                return
            r = await session.call_tool(sys.argv[1], json.loads(sys.argv[2]))
            print("isError:", bool(r.isError))
            for c in r.content:
                print(getattr(c, "text", c))


asyncio.run(main())
