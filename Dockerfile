FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY watchcentre ./watchcentre
RUN pip install --no-cache-dir .
COPY config ./config
ENV WATCHCENTRE_CONFIG_DIR=/app/config \
    WATCHCENTRE_HTTP_HOST=0.0.0.0 \
    WATCHCENTRE_LOG_FORMAT=json
EXPOSE 8080
USER nobody
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"
CMD ["watchcentre", "serve"]
