# One image for every PALM process: workers, router and the CLI.
FROM python:3.11-slim

WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

# The CPU wheel by default; a GPU host builds with
#   docker compose build --build-arg TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
ARG TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
COPY requirements.txt ./
RUN pip install $TORCH_SPEC && pip install -r requirements.txt

COPY pyproject.toml README.md ./
COPY palm palm
COPY services services
COPY proto proto
COPY examples examples
RUN pip install --no-deps . && useradd --create-home palm && mkdir -p /store \
    && chown palm /store
USER palm

ENV PALM_STORE_URL=/store PALM_BROKER_URL=redis://redis:6379/0
ENTRYPOINT ["palm"]
CMD ["--help"]
