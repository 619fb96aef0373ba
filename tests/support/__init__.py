"""Helpers the tests share: run readers, local fake services, test agents and project builders."""
