# MovieMatch server image: `docker build -t moviematch .`, then `docker run -p 8000:8000 moviematch`
# (rooms in the /moviematch/data volume; a config.yaml mounted at /moviematch/config.yaml is read),
# or several of them sharing one Redis: see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY pyproject.toml constraints.txt README.md /src/
COPY server /src/server/
COPY storage /src/storage/
COPY static /src/static/
RUN pip install -c /src/constraints.txt /src \
    && rm -rf /src \
    && useradd --system --uid 10001 --home-dir /moviematch --create-home moviematch \
    && install -d -o moviematch -g moviematch /moviematch/data

USER moviematch
WORKDIR /moviematch
VOLUME /moviematch/data
ENV HOST=0.0.0.0 \
    PORT=8000
EXPOSE 8000

# 200 when the process serves and reaches its storage, 503 otherwise (e.g. Redis down).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health\", timeout=2)"]

# SIGTERM (docker stop) closes sockets with 1001 and saves every room within SHUTDOWN_TIMEOUT (8 s),
# inside docker's 10 s grace period.
CMD ["moviematch"]
