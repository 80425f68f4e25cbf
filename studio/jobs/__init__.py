"""The persistent job queue: SQLite store, one GPU worker thread, import/export (see service.py).

    from studio.jobs.service import QueueService
    service = QueueService(DataPaths(data_dir), settings_provider)   # settings_provider() -> Settings
    service.start()                                                  # restore + start the worker
"""
