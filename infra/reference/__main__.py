from kinfer.infra.reference.pages import main

main()
