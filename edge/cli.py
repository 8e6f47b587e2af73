def main(argv=None):
    print("ok"); return 0
