"""The peer: Starlette's FileResponse (Range-aware) under uvicorn with uvloop."""
import os

from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Route

PATH = os.environ["BENCH_FILE"]


async def serve(request):
    return FileResponse(PATH)


app = Starlette(routes=[Route("/bench.bin", serve)])
