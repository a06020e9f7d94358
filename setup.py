# The C scanner is optional: if it cannot be built, kftools falls back to Python.
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self):
        try:
            super().run()
        except Exception as e:  # noqa: BLE001
            print(f"warning: kftools C scanner not built ({e}); using the Python fallback")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001
            print(f"warning: kftools C scanner not built ({e}); using the Python fallback")


CURSOR_H = ["kftools/journal/cursor.h"]  # the cursor's ordered operations, shared by the C files

setup(
    ext_modules=[
        Extension("kftools.journal._scan", ["kftools/journal/_scan.c"], extra_compile_args=["-O2"]),
        Extension("kftools.journal._framestream", ["kftools/journal/_framestream.c"], depends=CURSOR_H, extra_compile_args=["-O2"]),
        Extension("kftools.journal._merge", ["kftools/journal/_merge.c"], extra_compile_args=["-O2"]),
        Extension("kftools.journal._pretouch", ["kftools/journal/_pretouch.c"], depends=CURSOR_H, extra_compile_args=["-O2"]),
        Extension("kftools._format", ["kftools/_format.c"], extra_compile_args=["-O2"]),
        Extension("kftools.replay._pacer", ["kftools/replay/_pacer.c"], depends=CURSOR_H, extra_compile_args=["-O2"]),
        Extension("kftools.backtest._core", ["kftools/backtest/_core.c"], depends=CURSOR_H, extra_compile_args=["-O2"]),
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
